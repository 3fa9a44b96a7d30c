using Cluster.Host;
using Xunit;

namespace Cluster.Tests;

public sealed class CronExpressionTests
{
    private static DateTimeOffset At(string utc) => DateTimeOffset.Parse(utc + "Z", System.Globalization.CultureInfo.InvariantCulture);

    private static string Next(string expression, string after) =>
        CronExpression.Parse(expression).Next(At(after), TimeZoneInfo.Utc)?.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture) ?? "never";

    [Theory]
    [InlineData("* * * * *", "2026-12-02 20:15:30", "2026-12-02 20:16:00")]
    [InlineData("0 3 * * *", "2026-12-02 20:15:00", "2026-12-03 03:00:00")]
    [InlineData("0 3 * * *", "2026-12-02 02:59:59", "2026-12-02 03:00:00")]
    [InlineData("*/15 * * * *", "2026-12-02 20:15:00", "2026-12-02 20:30:00")]
    [InlineData("5/15 * * * *", "2026-12-02 20:21:00", "2026-12-02 20:35:00")]
    [InlineData("0 9-17/4 * * *", "2026-12-02 14:00:00", "2026-12-02 17:00:00")]
    [InlineData("30 2 1,15 * *", "2026-12-02 00:00:00", "2026-12-15 02:30:00")]
    [InlineData("0 0 1 JAN *", "2026-12-02 00:00:00", "2027-01-01 00:00:00")]
    [InlineData("0 0 * * MON", "2026-12-02 00:00:00", "2026-12-07 00:00:00")]
    [InlineData("0 0 * * 7", "2026-12-02 00:00:00", "2026-12-06 00:00:00")]
    [InlineData("0 0 * * 0", "2026-12-02 00:00:00", "2026-12-06 00:00:00")]
    [InlineData("0 0 29 2 *", "2026-12-02 00:00:00", "2028-02-29 00:00:00")]
    [InlineData("*/5 * * * * *", "2026-12-02 20:15:02", "2026-12-02 20:15:05")]
    [InlineData("0 0 0 * * *", "2026-12-31 23:59:59", "2027-01-01 00:00:00")]
    public void Next_is_the_first_matching_time_after_the_given_one(string expression, string after, string expected)
    {
        Assert.Equal(expected, Next(expression, after));
    }

    [Fact]
    public void Day_of_month_and_day_of_week_both_restricted_match_either()
    {
        // The 13th, or any Friday: after Wednesday 2 December 2026 comes Friday the 4th.
        Assert.Equal("2026-12-04 00:00:00", Next("0 0 13 * FRI", "2026-12-02 00:00:00"));
        Assert.Equal("2026-12-13 00:00:00", Next("0 0 13 * FRI", "2026-12-11 00:00:00"));
    }

    [Fact]
    public void An_expression_that_matches_no_day_has_no_next_time()
    {
        Assert.Equal("never", Next("0 0 30 2 *", "2026-12-02 00:00:00"));
    }

    [Fact]
    public void A_time_skipped_by_summer_time_is_passed_over_in_the_zone()
    {
        TimeZoneInfo zone = TimeZoneInfo.CreateCustomTimeZone(
            "Test", TimeSpan.Zero, "Test", "Test", "Test Summer",
            new[]
            {
                TimeZoneInfo.AdjustmentRule.CreateAdjustmentRule(
                    new DateTime(2000, 1, 1), new DateTime(2099, 12, 31), TimeSpan.FromHours(1),
                    TimeZoneInfo.TransitionTime.CreateFixedDateRule(new DateTime(1, 1, 1, 2, 0, 0), 3, 29),
                    TimeZoneInfo.TransitionTime.CreateFixedDateRule(new DateTime(1, 1, 1, 3, 0, 0), 10, 25)),
            });

        DateTimeOffset? next = CronExpression.Parse("30 2 * * *").Next(new DateTimeOffset(2027, 3, 28, 12, 0, 0, TimeSpan.Zero), zone);

        Assert.Equal(new DateTimeOffset(2027, 3, 30, 2, 30, 0, TimeSpan.FromHours(1)), next);
    }

    [Theory]
    [InlineData("", "0 fields")]
    [InlineData("* * * *", "4 fields")]
    [InlineData("* * * * * * *", "7 fields")]
    [InlineData("60 * * * *", "minute")]
    [InlineData("* 24 * * *", "hour")]
    [InlineData("* * 0 * *", "day")]
    [InlineData("* * * 13 *", "month")]
    [InlineData("* * * * 8", "weekday")]
    [InlineData("*/0 * * * *", "minute")]
    [InlineData("10-5 * * * *", "ends before it begins")]
    [InlineData("a * * * *", "minute")]
    [InlineData("* * * FOO *", "month")]
    public void A_wrong_expression_says_which_field_is_wrong(string expression, string said)
    {
        var error = Assert.Throws<FormatException>(() => CronExpression.Parse(expression));

        Assert.Contains(said, error.Message, StringComparison.Ordinal);
    }
}
