using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Cluster.Protocol;

namespace Cluster.Host;

/// <summary>What <see cref="StateStore.Load"/> found.</summary>
/// <param name="State">The saved apps: from the state file, else from its backup, else none.</param>
/// <param name="Problem">What was wrong with the state file and what was done about it, in words; null when nothing was.</param>
/// <param name="FromBackup">Whether the apps came from the backup (one change older than the state file).</param>
internal sealed record StateLoad(SavedState State, string? Problem, bool FromBackup);

/// <summary>
/// The app definitions, saved on every change so that a new host can bring the apps back. Each write goes to a
/// temporary file in the same folder, is flushed to disk and renamed over the old one, so a crash never leaves a
/// torn file; the version it replaces is kept as <c>state.json.bak</c>. Every file is the owner's only (0600), and
/// on Windows its content is encrypted for the current user (DPAPI). A file that cannot be read back, or does not
/// have the shape of a state file, is moved aside as <c>state.json.corrupt-&lt;UTC time&gt;</c> and the backup is used.
/// </summary>
internal sealed partial class StateStore
{
    private readonly string _path;
    private readonly TimeProvider _time;
    private readonly object _writeLock = new();

    /// <summary>What the state file holds now, as this store last read or wrote it: the next backup.</summary>
    private byte[]? _current;
    private string? _currentJson;

    public StateStore(string path, TimeProvider? time = null)
    {
        _path = path;
        _time = time ?? TimeProvider.System;
    }

    public string Path => _path;

    public string BackupPath => _path + ".bak";

    public StateLoad Load()
    {
        lock (_writeLock)
        {
            Read primary = ReadFile(_path);
            if (primary.State is not null)
            {
                Remember(primary);
                return new StateLoad(primary.State, null, false);
            }

            Read backup = ReadFile(BackupPath);
            if (primary.Missing && backup.Missing)
            {
                return new StateLoad(new SavedState(), null, false); // a CLUSTER_HOME with no apps saved yet
            }

            string problem = primary.Missing
                ? $"The state file {_path} was missing."
                : $"The state file {_path} {primary.Problem}; it was moved aside to {MoveAside(_path)}.";
            if (backup.State is not null)
            {
                Remember(backup);
                return new StateLoad(
                    backup.State,
                    $"{problem} The apps were recovered from its backup {BackupPath}, which is one change older: check that they are as you want them.",
                    true);
            }

            problem += backup.Missing
                ? " There was no backup."
                : $" Its backup {BackupPath} {backup.Problem}; it was moved aside to {MoveAside(BackupPath)}.";
            return new StateLoad(new SavedState(), problem, false);
        }
    }

    public void Save(SavedState state)
    {
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(state, HostJson.Default.SavedState);
        string text = System.Text.Encoding.UTF8.GetString(json);
        byte[] content = OperatingSystem.IsWindows() ? StateProtection.Protect(json) : json;
        lock (_writeLock)
        {
            // The backup is the version this write replaces, from memory: never a copy of whatever lies on disk now.
            if (_current is not null && _currentJson != text)
            {
                WriteAtomically(BackupPath, _current);
            }

            WriteAtomically(_path, content);
            _current = content;
            _currentJson = text;
        }
    }

    /// <summary>Why a saved definition cannot be used as one, or null when it can (the files it names are not checked).</summary>
    public static string? ShapeProblem(AppDefinition? definition)
    {
        if (definition?.Spec is null)
        {
            return "has an app with no definition";
        }

        try
        {
            StartSpecValidator.ValidateShape(definition.Spec);
        }
        catch (ClusterException e)
        {
            return $"has an app ('{AppName.Printable(definition.Spec.Name)}') that is not valid: {e.Message}";
        }

        if (string.IsNullOrEmpty(definition.NodePath) || !System.IO.Path.IsPathFullyQualified(definition.NodePath))
        {
            return $"has an app ('{definition.Spec.Name}') with no full path of its Node executable";
        }

        return null;
    }

    private void Remember(Read read)
    {
        _current = read.Content;
        _currentJson = read.Json;
    }

    private sealed record Read(SavedState? State, string? Problem, bool Missing, byte[]? Content = null, string? Json = null);

    private static Read ReadFile(string path)
    {
        byte[] content;
        try
        {
            if (!File.Exists(path))
            {
                return new Read(null, null, true);
            }

            content = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new Read(null, $"could not be read ({e.Message})", false);
        }

        byte[] json;
        if (OperatingSystem.IsWindows())
        {
            try
            {
                json = StateProtection.Unprotect(content);
            }
            catch (System.Security.Cryptography.CryptographicException e)
            {
                return new Read(null, $"could not be decrypted for this user ({e.Message})", false);
            }
        }
        else
        {
            json = content;
        }

        SavedState? state;
        try
        {
            state = JsonSerializer.Deserialize(json, HostJson.Default.SavedState);
        }
        catch (JsonException e)
        {
            return new Read(null, json.Length == 0 ? "was empty" : $"is not a readable state file ({e.Message})", false);
        }

        if (ShapeProblem(state) is { } problem)
        {
            return new Read(null, problem, false);
        }

        return new Read(state, null, false, content, System.Text.Encoding.UTF8.GetString(JsonSerializer.SerializeToUtf8Bytes(state!, HostJson.Default.SavedState)));
    }

    private static string? ShapeProblem(SavedState? state)
    {
        if (state is null)
        {
            return "holds null instead of the saved apps";
        }

        if (state.Apps is null)
        {
            return "has no list of apps";
        }

        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (AppDefinition? app in state.Apps)
        {
            if (ShapeProblem(app) is { } problem)
            {
                return problem;
            }

            if (!names.Add(app!.Name))
            {
                return $"has the app '{app.Name}' twice";
            }
        }

        return null;
    }

    /// <summary>Renames a bad file out of the way, kept for its owner to look at; returns its new path.</summary>
    private string MoveAside(string path)
    {
        string stamp = _time.GetUtcNow().ToString("yyyyMMdd'T'HHmmssfff'Z'", CultureInfo.InvariantCulture);
        string aside = $"{_path}.corrupt-{stamp}";
        for (int n = 1; File.Exists(aside); n++)
        {
            aside = $"{_path}.corrupt-{stamp}-{n}";
        }

        File.Move(path, aside);
        return aside;
    }

    /// <summary>Writes a file so that it is either the old one or the whole new one, even after a crash or power loss.</summary>
    private static void WriteAtomically(string path, byte[] content)
    {
        string temporary = path + ".tmp";
        File.Delete(temporary);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temporary, options))
        {
            stream.Write(content);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
        SyncFolder(System.IO.Path.GetDirectoryName(path)!);
    }

    /// <summary>On Unix a rename is durable once its folder is flushed too.</summary>
    private static void SyncFolder(string folder)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        int descriptor = Posix.Open(folder, 0); // O_RDONLY
        if (descriptor >= 0)
        {
            _ = Posix.Fsync(descriptor);
            _ = Posix.Close(descriptor);
        }
    }

    private static partial class Posix
    {
        [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "fsync")]
        public static partial int Fsync(int descriptor);

        [LibraryImport("libc", EntryPoint = "close")]
        public static partial int Close(int descriptor);
    }
}
