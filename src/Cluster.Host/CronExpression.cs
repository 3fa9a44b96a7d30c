using System.Globalization;

namespace Cluster.Host;

/// <summary>
/// A cron expression (-CronRestart): five fields, minute hour day-of-month month day-of-week, or six with the
/// seconds first. Each field is *, a number, a range a-b, a list a,b,c, or any of these with a step /n; months and
/// days of the week may be named (JAN, MON), and Sunday is 0 or 7. As in classic cron, when both days are
/// restricted, a day that matches either one matches. Times are the wall-clock times of a time zone.
/// </summary>
internal sealed class CronExpression
{
    private static readonly string[] MonthNames = { "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC" };
    private static readonly string[] DayNames = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT" };

    /// <summary>How far ahead a next time is looked for: an expression that matches no day in that long never does (30 February).</summary>
    private static readonly TimeSpan Horizon = TimeSpan.FromDays(366 * 5);

    private readonly bool[] _seconds;
    private readonly bool[] _minutes;
    private readonly bool[] _hours;
    private readonly bool[] _days;
    private readonly bool[] _months;
    private readonly bool[] _weekdays;
    private readonly bool _anyDay;
    private readonly bool _anyWeekday;

    private CronExpression(string text, bool[] seconds, bool[] minutes, bool[] hours, bool[] days, bool[] months, bool[] weekdays, bool anyDay, bool anyWeekday)
    {
        Text = text;
        _seconds = seconds;
        _minutes = minutes;
        _hours = hours;
        _days = days;
        _months = months;
        _weekdays = weekdays;
        _anyDay = anyDay;
        _anyWeekday = anyWeekday;
    }

    public string Text { get; }

    /// <summary>Reads an expression; one that is not valid is a <see cref="FormatException"/> that says which field is wrong and why.</summary>
    public static CronExpression Parse(string text)
    {
        string[] fields = (text ?? "").Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length is not (5 or 6))
        {
            throw new FormatException($"'{text}' has {fields.Length} fields; a cron expression has 5 (minute hour day month weekday) or 6 (second first), for example '0 3 * * *'.");
        }

        int at = fields.Length - 5;
        bool[] seconds = at == 1 ? Field(fields[0], "second", 0, 59, null) : Only(0, 60);
        bool[] weekdays = Field(fields[at + 4], "weekday", 0, 7, DayNames);
        weekdays[0] |= weekdays[7]; // 7 is Sunday too
        return new CronExpression(
            string.Join(" ", fields),
            seconds,
            Field(fields[at], "minute", 0, 59, null),
            Field(fields[at + 1], "hour", 0, 23, null),
            Field(fields[at + 2], "day", 1, 31, null),
            Field(fields[at + 3], "month", 1, 12, MonthNames),
            weekdays,
            IsAny(fields[at + 2]),
            IsAny(fields[at + 4]));
    }

    /// <summary>The first time after <paramref name="after"/> that the expression matches, in the zone's wall-clock time; null when there is none.</summary>
    public DateTimeOffset? Next(DateTimeOffset after, TimeZoneInfo zone)
    {
        DateTime local = TimeZoneInfo.ConvertTime(after, zone).DateTime;
        DateTime candidate = new DateTime(local.Year, local.Month, local.Day, local.Hour, local.Minute, local.Second, DateTimeKind.Unspecified).AddSeconds(1);
        DateTime end = candidate + Horizon;
        while (candidate < end)
        {
            if (!_months[candidate.Month])
            {
                candidate = new DateTime(candidate.Year, candidate.Month, 1).AddMonths(1);
            }
            else if (!DayMatches(candidate))
            {
                candidate = candidate.Date.AddDays(1);
            }
            else if (!_hours[candidate.Hour])
            {
                candidate = candidate.Date.AddHours(candidate.Hour + 1);
            }
            else if (!_minutes[candidate.Minute])
            {
                candidate = candidate.Date.AddHours(candidate.Hour).AddMinutes(candidate.Minute + 1);
            }
            else if (!_seconds[candidate.Second])
            {
                candidate = candidate.AddSeconds(1);
            }
            else if (zone.IsInvalidTime(candidate))
            {
                candidate = candidate.AddSeconds(1); // skipped by a change to summer time
            }
            else
            {
                return new DateTimeOffset(candidate, zone.GetUtcOffset(candidate));
            }
        }

        return null;
    }

    private bool DayMatches(DateTime date)
    {
        bool day = _days[date.Day];
        bool weekday = _weekdays[(int)date.DayOfWeek];
        return _anyDay || _anyWeekday ? day && weekday : day || weekday;
    }

    private static bool IsAny(string field) => field == "*" || field == "?";

    private static bool[] Only(int value, int size)
    {
        var set = new bool[size];
        set[value] = true;
        return set;
    }

    private static bool[] Field(string field, string name, int min, int max, string[]? names)
    {
        var set = new bool[max + 1];
        foreach (string part in field.Split(','))
        {
            string range = part;
            int step = 1;
            int slash = part.IndexOf('/');
            if (slash >= 0)
            {
                range = part[..slash];
                step = Number(part[(slash + 1)..], name, 1, max, null, field);
            }

            int first, last;
            if (IsAny(range))
            {
                (first, last) = (min, max);
            }
            else if (range.IndexOf('-', 1) is var dash and > 0)
            {
                first = Number(range[..dash], name, min, max, names, field);
                last = Number(range[(dash + 1)..], name, min, max, names, field);
                if (last < first)
                {
                    throw new FormatException($"The {name} field '{field}' has the range {range}, which ends before it begins.");
                }
            }
            else
            {
                first = Number(range, name, min, max, names, field);
                last = slash >= 0 ? max : first; // 5/15 is 5, 20, 35, 50
            }

            for (int value = first; value <= last; value += step)
            {
                set[value] = true;
            }
        }

        return set;
    }

    private static int Number(string text, string name, int min, int max, string[]? names, string field)
    {
        if (names is not null)
        {
            int named = Array.FindIndex(names, n => string.Equals(n, text, StringComparison.OrdinalIgnoreCase));
            if (named >= 0)
            {
                return named + (names.Length == 12 ? 1 : 0);
            }
        }

        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
        {
            throw new FormatException($"The {name} field '{field}' has '{text}', which is not a {name} from {min} to {max}{(names is null ? "" : " or a name such as " + names[1])}.");
        }

        return value;
    }
}
