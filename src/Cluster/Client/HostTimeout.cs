using System;
using System.Globalization;

namespace Cluster.Client
{
    /// <summary>How long a cmdlet waits for the host to say anything: 10 seconds, or CLUSTER_TIMEOUT_SECONDS.</summary>
    internal static class HostTimeout
    {
        public const string Variable = "CLUSTER_TIMEOUT_SECONDS";

        public static readonly TimeSpan Default = TimeSpan.FromSeconds(10);

        /// <summary>A day: longer is a typo that would let a runbook hang.</summary>
        private const double MaxSeconds = 24 * 60 * 60;

        /// <summary>The timeout the environment sets; throws <see cref="FormatException"/> for a value that is not one.</summary>
        public static TimeSpan FromEnvironment() => Parse(Environment.GetEnvironmentVariable(Variable));

        internal static TimeSpan Parse(string? text)
        {
            if (string.IsNullOrWhiteSpace(text))
            {
                return Default;
            }

            if (double.TryParse(text!.Trim(), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double seconds)
                && seconds > 0
                && seconds <= MaxSeconds)
            {
                return TimeSpan.FromSeconds(seconds);
            }

            throw new FormatException(
                $"{Variable} is '{text}', which is not a number of seconds from more than 0 to {MaxSeconds}. "
                + $"Set it to how long a Cluster cmdlet waits for the host to answer (for example 30), or remove it for the default of {Default.TotalSeconds} seconds.");
        }
    }
}
