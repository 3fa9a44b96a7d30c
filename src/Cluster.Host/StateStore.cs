using System.Text.Json;

namespace Cluster.Host;

/// <summary>
/// The app definitions, saved on every change so that a new host can bring the apps back. Written to a
/// temporary file and renamed over the old one, so a crash mid-write never leaves a torn file; readable by
/// the owner only, since environments hold secrets.
/// </summary>
internal sealed class StateStore
{
    private readonly string _path;
    private readonly object _writeLock = new();

    public StateStore(string path) => _path = path;

    public SavedState Load()
    {
        if (!File.Exists(_path))
        {
            return new SavedState();
        }

        using FileStream stream = File.OpenRead(_path);
        return JsonSerializer.Deserialize(stream, HostJson.Default.SavedState) ?? new SavedState();
    }

    public void Save(SavedState state)
    {
        lock (_writeLock)
        {
            string temporary = _path + ".tmp";
            File.Delete(temporary);
            var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var stream = new FileStream(temporary, options))
            {
                JsonSerializer.Serialize(stream, state, HostJson.Default.SavedState);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, _path, overwrite: true);
        }
    }
}
