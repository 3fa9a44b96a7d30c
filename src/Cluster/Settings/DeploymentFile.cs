using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Management.Automation.Language;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Cluster.Settings
{
    /// <summary>One app of a deployment file: its settings by Start-ClusterApp's parameter names.</summary>
    internal sealed class DeploymentEntry
    {
        public DeploymentEntry(string label, Dictionary<string, object?> settings, IReadOnlyList<string> ignored)
        {
            Label = label;
            Settings = settings;
            Ignored = ignored;
        }

        /// <summary>The app's name, or its place in the file when it has none.</summary>
        public string Label { get; }

        public Dictionary<string, object?> Settings { get; }

        /// <summary>Keys of a PM2 ecosystem file that Cluster does not use.</summary>
        public IReadOnlyList<string> Ignored { get; }
    }

    /// <summary>
    /// Reads the apps a deployment file lists: a PowerShell data file (<c>@{ Apps = @( @{ Name = ...; Path = ... } ) }</c>),
    /// or, for migration, a PM2 ecosystem file (<c>.json</c>, or <c>.js</c> evaluated by Node), with its
    /// <c>env_&lt;name&gt;</c> block chosen by <paramref name="environmentName"/>. Any problem is an error naming the
    /// file, the app and the key.
    /// </summary>
    internal static class DeploymentFile
    {
        private static readonly Regex Size = new Regex(@"^\s*(\d+)\s*([KMG]?)B?\s*$", RegexOptions.IgnoreCase);

        public static IReadOnlyList<DeploymentEntry> Read(string path, string? environmentName, Func<string, string?> findProgram)
        {
            if (!File.Exists(path))
            {
                throw new SettingsException("FileNotFound", ErrorCategory.ObjectNotFound, $"The deployment file '{path}' does not exist.", path, new FileNotFoundException(null, path));
            }

            string extension = System.IO.Path.GetExtension(path).ToLowerInvariant();
            IReadOnlyList<DeploymentEntry> entries = extension switch
            {
                ".psd1" => InFile(path, null, () => ReadDataFile(path)),
                ".json" => InFile(path, null, () => ReadEcosystem(path, File.ReadAllText(path), environmentName)),
                ".js" or ".cjs" or ".mjs" => InFile(path, null, () => ReadEcosystem(path, Evaluate(path, findProgram), environmentName)),
                _ => throw new SettingsException(
                    "UnknownFileType",
                    ErrorCategory.InvalidArgument,
                    $"'{path}' is not a deployment file Cluster reads: give a .psd1 file, or a PM2 ecosystem file (.json, .js, .cjs, .mjs).",
                    path),
            };

            if (extension == ".psd1" && environmentName is not null)
            {
                throw new SettingsException("EnvironmentNameNeedsEcosystem", ErrorCategory.InvalidArgument, $"-EnvironmentName chooses an env_<name> block of a PM2 ecosystem file; '{path}' is a data file, which has none.", environmentName);
            }

            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            foreach (DeploymentEntry entry in entries)
            {
                if (entry.Settings.TryGetValue("Name", out object? name) && name is string text && !seen.Add(text))
                {
                    throw new SettingsException("DuplicateApp", ErrorCategory.InvalidData, $"In {path}: the app '{text}' is listed twice. Give each app its own Name.", text);
                }
            }

            return entries;
        }

        /// <summary>Runs a read with the file (and the app) named in any error it raises.</summary>
        private static T InFile<T>(string path, string? app, Func<T> read)
        {
            try
            {
                return read();
            }
            catch (SettingsException e) when (!e.Message.StartsWith("In ", StringComparison.Ordinal))
            {
                string where = app is null ? $"In {path}" : $"In {path}, app '{app}'";
                throw new SettingsException(e.Code, e.Category, $"{where}: {e.Message}", e.Target, e);
            }
        }

        private static IReadOnlyList<DeploymentEntry> ReadDataFile(string path)
        {
            ScriptBlockAst ast = Parser.ParseFile(path, out _, out ParseError[] errors);
            if (errors.Length > 0)
            {
                throw Invalid($"line {errors[0].Extent.StartLineNumber}: {errors[0].Message}");
            }

            if (!(ast.EndBlock?.Statements.Count == 1 && ast.Find(a => a is HashtableAst, false) is HashtableAst top && top.Parent?.Parent == ast.EndBlock.Statements[0]))
            {
                throw Invalid("it must hold one hashtable, @{ Apps = @( @{ Name = 'api'; Path = './app.js' } ) }.");
            }

            Hashtable file;
            try
            {
                file = (Hashtable)top.SafeGetValue();
            }
            catch (InvalidOperationException e)
            {
                throw Invalid($"it may hold only literal values (strings, numbers, $true, $false, $null, arrays and hashtables): {e.Message}");
            }

            foreach (object key in file.Keys)
            {
                if (!string.Equals(key.ToString(), "Apps", StringComparison.OrdinalIgnoreCase))
                {
                    throw new SettingsException("UnknownSetting", ErrorCategory.InvalidData, $"'{key}' is not a key of a deployment file; it has one key, Apps.", key);
                }
            }

            object?[] apps = file["Apps"] switch
            {
                null => throw Invalid("it has no Apps key: @{ Apps = @( @{ Name = 'api'; Path = './app.js' } ) }."),
                object?[] many => many,
                object one => new[] { one },
            };

            var entries = new List<DeploymentEntry>();
            for (int i = 0; i < apps.Length; i++)
            {
                if (!(apps[i] is Hashtable app))
                {
                    throw Invalid($"app {i + 1} of Apps is not a hashtable.");
                }

                string label = app["Name"]?.ToString() ?? $"#{i + 1}";
                entries.Add(new DeploymentEntry(label, InFile(path, label, () => AppSettings.Convert(app)), Array.Empty<string>()));
            }

            return entries;
        }

        /// <summary>A PM2 ecosystem file's apps, by the names Start-ClusterApp gives their settings.</summary>
        internal static IReadOnlyList<DeploymentEntry> ReadEcosystem(string path, string json, string? environmentName)
        {
            JsonDocument document;
            try
            {
                document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
            }
            catch (JsonException e)
            {
                throw Invalid($"it is not valid JSON ({e.Message}).");
            }

            using (document)
            {
                JsonElement apps = document.RootElement.ValueKind == JsonValueKind.Array ? document.RootElement
                    : document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("apps", out JsonElement list) ? list
                    : throw Invalid("a PM2 ecosystem file has an 'apps' list: { \"apps\": [ { \"name\": \"api\", \"script\": \"./app.js\" } ] }.");
                if (apps.ValueKind != JsonValueKind.Array)
                {
                    throw Invalid("'apps' must be a list of apps.");
                }

                var entries = new List<DeploymentEntry>();
                int index = 0;
                foreach (JsonElement app in apps.EnumerateArray())
                {
                    index++;
                    if (app.ValueKind != JsonValueKind.Object)
                    {
                        throw Invalid($"app {index} of 'apps' is not an object.");
                    }

                    string label = app.TryGetProperty("name", out JsonElement name) && name.ValueKind == JsonValueKind.String ? name.GetString()! : $"#{index}";
                    entries.Add(InFile(path, label, () => FromEcosystem(app, environmentName)));
                }

                if (environmentName is not null && !entries.Any(e => e.Settings.ContainsKey("Environment")))
                {
                    throw new SettingsException("EnvironmentNameNotFound", ErrorCategory.ObjectNotFound, $"No app has an env_{environmentName} block.", environmentName);
                }

                return entries;
            }
        }

        private static DeploymentEntry FromEcosystem(JsonElement app, string? environmentName)
        {
            var raw = new Hashtable(StringComparer.OrdinalIgnoreCase);
            var ignored = new List<string>();
            Hashtable? environment = null;
            Hashtable? chosen = null;
            foreach (JsonProperty property in app.EnumerateObject())
            {
                JsonElement value = property.Value;
                switch (property.Name)
                {
                    case "name": raw["Name"] = Text(value, property.Name); break;
                    case "script": raw["Path"] = Text(value, property.Name); break;
                    case "cwd": raw["WorkingDirectory"] = Text(value, property.Name); break;
                    case "args": raw["Arguments"] = Words(value, property.Name); break;
                    case "node_args":
                    case "interpreter_args": raw["NodeArguments"] = Words(value, property.Name); break;
                    case "instances": raw["Instances"] = Instances(value); break;
                    case "exec_mode": raw["Mode"] = Mode(value); break;
                    case "env": environment = Variables(value, property.Name); break;
                    case "max_memory_restart": raw["MaxMemoryRestart"] = Bytes(value, property.Name); break;
                    case "max_size": raw["LogMaxSize"] = Bytes(value, property.Name); break;
                    case "kill_timeout": raw["KillTimeout"] = Number(value, property.Name); break;
                    case "listen_timeout": raw["ListenTimeout"] = Number(value, property.Name); break;
                    case "wait_ready": raw["WaitReady"] = value.ValueKind == JsonValueKind.True ? true : value.ValueKind == JsonValueKind.False ? false : throw Wrong(property.Name, "true or false"); break;
                    case "min_uptime": raw["MinUptime"] = Number(value, property.Name); break;
                    case "restart_delay": raw["RestartDelay"] = Number(value, property.Name); break;
                    case "max_restarts": raw["MaxRestarts"] = Number(value, property.Name); break;
                    case "autorestart": raw["NoAutoRestart"] = value.ValueKind == JsonValueKind.False; break;
                    default:
                        if (environmentName is not null && property.Name == "env_" + environmentName)
                        {
                            chosen = Variables(value, property.Name);
                        }
                        else if (!property.Name.StartsWith("env_", StringComparison.Ordinal))
                        {
                            ignored.Add(property.Name);
                        }

                        break;
                }
            }

            if (environment is not null || chosen is not null)
            {
                var merged = new Hashtable(StringComparer.Ordinal);
                foreach (Hashtable? layer in new[] { environment, chosen })
                {
                    foreach (DictionaryEntry variable in layer ?? new Hashtable())
                    {
                        merged[variable.Key] = variable.Value;
                    }
                }

                raw["Environment"] = merged;
            }

            return new DeploymentEntry(raw["Name"]?.ToString() ?? "", AppSettings.Convert(raw), ignored);
        }

        private static string Text(JsonElement value, string key) =>
            value.ValueKind == JsonValueKind.String ? value.GetString()! : throw Wrong(key, "a string");

        private static string[] Words(JsonElement value, string key) => value.ValueKind switch
        {
            JsonValueKind.String => value.GetString()!.Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries),
            JsonValueKind.Array => value.EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String ? v.GetString()! : v.GetRawText()).ToArray(),
            _ => throw Wrong(key, "a string or a list of strings"),
        };

        private static int Instances(JsonElement value)
        {
            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int count))
            {
                return count;
            }

            string text = value.ValueKind == JsonValueKind.String ? value.GetString()! : "";
            return text == "max" ? 0 : int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int parsed) ? parsed : throw Wrong("instances", "a number or \"max\"");
        }

        private static string Mode(JsonElement value) => value.ValueKind == JsonValueKind.String ? value.GetString() switch
        {
            "cluster" or "cluster_mode" => "Cluster",
            "fork" or "fork_mode" => "Fork",
            _ => throw Wrong("exec_mode", "\"cluster\" or \"fork\""),
        } : throw Wrong("exec_mode", "\"cluster\" or \"fork\"");

        private static long Number(JsonElement value, string key) =>
            value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long number) ? number
            : value.ValueKind == JsonValueKind.String && long.TryParse(value.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long parsed) ? parsed
            : throw Wrong(key, "a number of milliseconds");

        /// <summary>A size as PM2 writes it: bytes, or a number with K, M or G.</summary>
        private static long Bytes(JsonElement value, string key)
        {
            if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long bytes))
            {
                return bytes;
            }

            Match match = value.ValueKind == JsonValueKind.String ? Size.Match(value.GetString()!) : Match.Empty;
            if (!match.Success)
            {
                throw Wrong(key, "a size such as 300M, 1G or a number of bytes");
            }

            long unit = match.Groups[2].Value.ToUpperInvariant() switch { "K" => 1024L, "M" => 1024L * 1024, "G" => 1024L * 1024 * 1024, _ => 1L };
            return long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) * unit;
        }

        private static Hashtable Variables(JsonElement value, string key)
        {
            if (value.ValueKind != JsonValueKind.Object)
            {
                throw Wrong(key, "an object of names and values");
            }

            var variables = new Hashtable(StringComparer.Ordinal);
            foreach (JsonProperty variable in value.EnumerateObject())
            {
                variables[variable.Name] = variable.Value.ValueKind switch
                {
                    JsonValueKind.String => variable.Value.GetString(),
                    JsonValueKind.Null => null,
                    _ => variable.Value.GetRawText(),
                };
            }

            return variables;
        }

        /// <summary>Asks Node for what a JavaScript ecosystem file exports, as JSON.</summary>
        private static string Evaluate(string path, Func<string, string?> findProgram)
        {
            string node = findProgram("node") ?? throw new SettingsException("NodeNotFound", ErrorCategory.ObjectNotFound, "A JavaScript ecosystem file is read by Node, and node is not on PATH.", "node");
            const string Script = "import(require('url').pathToFileURL(process.argv[1]).href).then(m => m.default ?? m).then(c => process.stdout.write(JSON.stringify(c)), e => { process.stderr.write(String(e && e.stack || e)); process.exit(1); })";
            if (path.IndexOf('"') >= 0)
            {
                throw Invalid("its path has a double quote, which cannot be passed to Node; rename or move it.");
            }

            var info = new ProcessStartInfo(node)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = System.IO.Path.GetDirectoryName(path) ?? ".",
            };
            info.Arguments = $"-e \"{Script}\" \"{path}\"";
            using Process process = Process.Start(info) ?? throw Invalid("Node could not be started to read it.");
            System.Threading.Tasks.Task<string> error = process.StandardError.ReadToEndAsync();
            string output = process.StandardOutput.ReadToEnd();
            if (!process.WaitForExit(30_000))
            {
                process.Kill();
                throw Invalid("Node did not finish reading it within 30 seconds.");
            }

            if (process.ExitCode != 0)
            {
                string first = error.Result.Split('\n').FirstOrDefault(l => l.Trim().Length > 0) ?? $"exit code {process.ExitCode}";
                throw Invalid($"Node could not evaluate it: {first.Trim()}");
            }

            return output;
        }

        private static SettingsException Invalid(string problem) => new SettingsException("InvalidFile", ErrorCategory.InvalidData, problem, null);

        private static SettingsException Wrong(string key, string expected) =>
            new SettingsException("InvalidSettingValue", ErrorCategory.InvalidData, $"'{key}' must be {expected}.", key);
    }
}
