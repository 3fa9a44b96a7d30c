using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Management.Automation.Language;
using System.Text;
using Cluster.Protocol;

namespace Cluster.Settings
{
    /// <summary>
    /// Writes apps' settings as a deployment data file that Sync-ClusterApp applies back unchanged. Only what was
    /// given is written: inherited session variables are not, and EnvironmentFromSession variables by name only.
    /// </summary>
    internal static class DataFileWriter
    {
        public static string Write(IEnumerable<StartSpec> specs)
        {
            var text = new StringBuilder();
            text.AppendLine("@{");
            text.AppendLine("    Apps = @(");
            foreach (StartSpec spec in specs)
            {
                text.AppendLine("        @{");
                foreach (var (key, value) in Settings(spec))
                {
                    text.Append("            ").Append(key).Append(" = ").AppendLine(value);
                }

                text.AppendLine("        }");
            }

            text.AppendLine("    )");
            text.AppendLine("}");
            return text.ToString();
        }

        private static IEnumerable<(string Key, string Value)> Settings(StartSpec spec)
        {
            yield return ("Name", Quote(spec.Name));
            yield return ("Path", Quote(spec.Script));
            yield return ("Mode", Quote(spec.Mode == AppModes.Fork ? "Fork" : "Cluster"));
            yield return ("Instances", Number(spec.Instances));
            if (spec.Arguments.Count > 0)
            {
                yield return ("Arguments", List(spec.Arguments));
            }

            if (spec.NodeArguments.Count > 0)
            {
                yield return ("NodeArguments", List(spec.NodeArguments));
            }

            yield return ("WorkingDirectory", Quote(spec.WorkingDirectory));
            string[] given = spec.GivenVariables.Where(n => spec.Environment.ContainsKey(n) && !spec.SessionVariables.Contains(n)).OrderBy(n => n, System.StringComparer.Ordinal).ToArray();
            if (given.Length > 0)
            {
                yield return ("Environment", "@{ " + string.Join("; ", given.Select(n => $"{Quote(n)} = {Quote(spec.Environment[n])}")) + " }");
            }

            if (spec.SessionVariables.Count > 0)
            {
                yield return ("EnvironmentFromSession", List(spec.SessionVariables));
            }

            foreach (var (key, value) in new (string, long?)[]
            {
                ("ListenTimeout", spec.ListenTimeoutMs), ("KillTimeout", spec.KillTimeoutMs), ("MaxRestarts", spec.MaxRestarts),
                ("MinUptime", spec.MinUptimeMs), ("RestartDelay", spec.RestartDelayMs), ("MaxMemoryRestart", spec.MaxMemoryBytes),
                ("LogMaxSize", spec.LogMaxBytes), ("LogFileCount", spec.LogFileCount),
                ("HealthCheckTimeout", spec.HealthCheckTimeoutMs), ("LivenessInterval", spec.LivenessIntervalMs),
                ("LivenessFailures", spec.LivenessFailures), ("StabilityWindow", spec.StabilityWindowMs),
            })
            {
                if (value is { } number)
                {
                    yield return (key, Number(number));
                }
            }

            if (spec.Scheduling is { } scheduling)
            {
                yield return ("Scheduling", Quote(scheduling == "shared" ? "Shared" : "RoundRobin"));
            }

            if (!spec.Drain)
            {
                yield return ("NoDrain", "$true");
            }

            if (!spec.AutoRestart)
            {
                yield return ("NoAutoRestart", "$true");
            }

            if (spec.WaitReady)
            {
                yield return ("WaitReady", "$true");
            }

            if (spec.Sticky)
            {
                yield return ("Sticky", "$true");
            }

            if (spec.HealthCheckPath is { } path)
            {
                yield return ("HealthCheckPath", Quote(path));
            }

            if (spec.HealthCheckCommand is { } command)
            {
                yield return ("HealthCheckCommand", Quote(command));
            }

            // Restart controls, and how each instance is started
            if (spec.StopExitCodes is { Count: > 0 } codes)
            {
                yield return ("StopExitCodes", "@(" + string.Join(", ", codes.Select(c => Number(c))) + ")");
            }

            if (spec.CleanEnvironment)
            {
                yield return ("CleanEnvironment", "$true");
            }

            if (spec.Watch)
            {
                yield return ("Watch", "$true");
            }

            if (spec.WatchIgnore is { Count: > 0 } ignored)
            {
                yield return ("WatchIgnore", List(ignored));
            }

            if (spec.WatchDelayMs is { } watchDelay)
            {
                yield return ("WatchDelay", Number(watchDelay));
            }

            foreach (var (key, value) in new (string, string?)[]
            {
                ("InstanceVariable", spec.InstanceVariable), ("IncrementVariable", spec.IncrementVariable), ("Interpreter", spec.Interpreter), ("CronRestart", spec.CronRestart),
            })
            {
                if (value is not null)
                {
                    yield return (key, Quote(value));
                }
            }
        }

        private static string Quote(string value) => "'" + CodeGeneration.EscapeSingleQuotedStringContent(value) + "'";

        private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

        private static string List(IEnumerable<string> values) => "@(" + string.Join(", ", values.Select(Quote)) + ")";
    }
}
