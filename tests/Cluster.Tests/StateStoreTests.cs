using System.Text.Json;
using Cluster.Host;
using Cluster.Protocol;
using Cluster.Tests.Support;
using Xunit;

namespace Cluster.Tests;

/// <summary>The state file as a database: atomic writes, one backup, and every bad file found, moved aside and recovered from.</summary>
public sealed class StateStoreTests : IDisposable
{
    private readonly TempFolder _folder = new();
    private readonly string _path;
    private readonly string _script;

    public StateStoreTests()
    {
        _path = _folder.Combine("state.json");
        _script = _folder.WriteFile("app.js", "console.log('hi');\n");
    }

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void A_missing_file_and_no_backup_is_a_new_home_with_no_apps_and_no_problem()
    {
        StateLoad loaded = new StateStore(_path).Load();

        Assert.Empty(loaded.State.Apps);
        Assert.Null(loaded.Problem);
        Assert.False(loaded.FromBackup);
        Assert.Empty(CorruptFiles());
    }

    [Fact]
    public void What_is_saved_is_loaded_back()
    {
        new StateStore(_path).Save(State(App("api", instances: 3, secret: "s3cret")));

        StateLoad loaded = new StateStore(_path).Load();

        Assert.Null(loaded.Problem);
        AppDefinition api = Assert.Single(loaded.State.Apps);
        Assert.Equal("api", api.Name);
        Assert.Equal(3, api.Spec.Instances);
        Assert.Equal("s3cret", api.Spec.Environment["SECRET"]);
    }

    [Fact]
    public void A_write_leaves_no_temporary_file_and_the_file_is_the_owners_only()
    {
        var store = new StateStore(_path);
        store.Save(State(App("api")));
        store.Save(State(App("api"), App("web")));

        Assert.False(File.Exists(_path + ".tmp"));
        Assert.False(File.Exists(_path + ".bak.tmp"));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_path));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_path + ".bak"));
        }
    }

    [Fact]
    public void A_write_replaces_the_file_by_rename_so_a_reader_never_sees_it_torn()
    {
        var store = new StateStore(_path);
        store.Save(State(App("api")));
        // A reader that opened the old file goes on reading the old version whole: the new one is another file.
        using FileStream before = File.OpenRead(_path);
        long oldLength = before.Length;

        store.Save(State(App("api"), App("web"), App("worker")));

        using var reader = new StreamReader(before);
        string old = reader.ReadToEnd();
        Assert.Equal(oldLength, old.Length);
        Assert.Single(JsonSerializer.Deserialize(old, HostJson.Default.SavedState)!.Apps);
        Assert.Equal(3, new StateStore(_path).Load().State.Apps.Count);
    }

    [Fact]
    public void A_leftover_temporary_file_from_a_crash_mid_write_changes_nothing()
    {
        new StateStore(_path).Save(State(App("api")));
        File.WriteAllText(_path + ".tmp", "{\"apps\":[{\"spec\":{\"na");

        StateLoad loaded = new StateStore(_path).Load();
        Assert.Null(loaded.Problem);
        Assert.Equal("api", Assert.Single(loaded.State.Apps).Name);

        new StateStore(_path).Save(State(App("web")));
        Assert.False(File.Exists(_path + ".tmp"));
    }

    [Fact]
    public void The_backup_is_the_version_before_the_last_change()
    {
        var store = new StateStore(_path);
        store.Save(State(App("api")));
        Assert.False(File.Exists(store.BackupPath), "the first write has nothing to back up");

        store.Save(State(App("api"), App("web")));
        Assert.Equal(new[] { "api" }, Names(store.BackupPath));

        store.Save(State(App("web")));
        Assert.Equal(new[] { "api", "web" }, Names(store.BackupPath));
        Assert.Equal(new[] { "web" }, Names(_path));
    }

    [Fact]
    public void Saving_the_same_apps_again_keeps_the_older_backup()
    {
        var store = new StateStore(_path);
        store.Save(State(App("api")));
        store.Save(State(App("api"), App("web")));

        store.Save(State(App("api"), App("web")));

        Assert.Equal(new[] { "api" }, Names(store.BackupPath));
    }

    [Fact]
    public void The_backup_is_written_from_what_was_saved_not_copied_from_a_file_damaged_since()
    {
        var store = new StateStore(_path);
        store.Save(State(App("api")));
        File.WriteAllText(_path, "garbage");

        store.Save(State(App("api"), App("web")));

        Assert.Equal(new[] { "api" }, Names(store.BackupPath));
    }

    public static TheoryData<string, string, string> BadFiles => new()
    {
        { "truncated", "{\"apps\":[{\"spec\":{\"name\":\"api\",\"scr", "is not a readable state file" },
        { "empty", "", "was empty" },
        { "garbage", "\u0001\u0002not json at all", "is not a readable state file" },
        { "JSON null", "null", "holds null" },
        { "apps null", "{\"apps\":null}", "has no list of apps" },
        { "apps of the wrong type", "{\"apps\":\"api\"}", "is not a readable state file" },
        { "an array", "[1,2,3]", "is not a readable state file" },
        { "a null app", "{\"apps\":[null]}", "has an app with no definition" },
        { "an app without a spec", "{\"apps\":[{\"nodePath\":\"/usr/bin/node\"}]}", "is not valid" },
        { "an app with a null spec", "{\"apps\":[{\"spec\":null,\"nodePath\":\"/usr/bin/node\"}]}", "has an app with no definition" },
        { "an app with no name", "{\"apps\":[{\"spec\":{\"script\":\"/srv/app.js\",\"workingDirectory\":\"/srv\"},\"nodePath\":\"/usr/bin/node\"}]}", "is not valid" },
        { "a number where text belongs", "{\"apps\":[{\"spec\":{\"name\":42}}]}", "is not a readable state file" },
        { "a null environment", "{\"apps\":[{\"spec\":{\"name\":\"api\",\"script\":\"/srv/app.js\",\"workingDirectory\":\"/srv\",\"environment\":null},\"nodePath\":\"/usr/bin/node\"}]}", "is not valid" },
        { "a null environment value", "{\"apps\":[{\"spec\":{\"name\":\"api\",\"script\":\"/srv/app.js\",\"workingDirectory\":\"/srv\",\"environment\":{\"A\":null}},\"nodePath\":\"/usr/bin/node\"}]}", "is not valid" },
        { "an environment name with =", "{\"apps\":[{\"spec\":{\"name\":\"api\",\"script\":\"/srv/app.js\",\"workingDirectory\":\"/srv\",\"environment\":{\"A=B\":\"c\"}},\"nodePath\":\"/usr/bin/node\"}]}", "is not valid" },
        { "null arguments", "{\"apps\":[{\"spec\":{\"name\":\"api\",\"script\":\"/srv/app.js\",\"workingDirectory\":\"/srv\",\"arguments\":null},\"nodePath\":\"/usr/bin/node\"}]}", "is not valid" },
        { "an unknown mode", "{\"apps\":[{\"spec\":{\"name\":\"api\",\"script\":\"/srv/app.js\",\"workingDirectory\":\"/srv\",\"mode\":\"daemon\"},\"nodePath\":\"/usr/bin/node\"}]}", "is not valid" },
        { "10 million instances", "{\"apps\":[{\"spec\":{\"name\":\"api\",\"script\":\"/srv/app.js\",\"workingDirectory\":\"/srv\",\"instances\":10000000},\"nodePath\":\"/usr/bin/node\"}]}", "is not valid" },
        { "no Node executable", "{\"apps\":[{\"spec\":{\"name\":\"api\",\"script\":\"/srv/app.js\",\"workingDirectory\":\"/srv\"}}]}", "Node executable" },
        { "a relative script", "{\"apps\":[{\"spec\":{\"name\":\"api\",\"script\":\"app.js\",\"workingDirectory\":\"/srv\"},\"nodePath\":\"/usr/bin/node\"}]}", "is not valid" },
        { "the same app twice", "{\"apps\":[" + AppJson("api") + "," + AppJson("API") + "]}", "twice" },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void A_bad_file_is_moved_aside_reported_and_recovered_from_the_backup(string label, string content, string says)
    {
        var first = new StateStore(_path);
        first.Save(State(App("api")));
        first.Save(State(App("api"), App("web")));
        WriteAsTheHostWould(_path, content);

        StateLoad loaded = new StateStore(_path).Load();

        Assert.True(loaded.FromBackup, label);
        Assert.Equal(new[] { "api" }, loaded.State.Apps.Select(a => a.Name));
        Assert.NotNull(loaded.Problem);
        Assert.Contains(says, loaded.Problem);
        Assert.Contains("recovered from its backup", loaded.Problem);
        Assert.False(File.Exists(_path), "the bad file is moved aside, not left in place");
        string aside = Assert.Single(CorruptFiles());
        Assert.Contains(aside, loaded.Problem);
        Assert.Matches(@"state\.json\.corrupt-\d{8}T\d{9}Z$", aside);
        Assert.Equal(content, ReadAsTheHostWould(aside));
    }

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void A_bad_file_without_a_backup_gives_no_apps_and_says_so(string label, string content, string says)
    {
        WriteAsTheHostWould(_path, content);

        StateLoad loaded = new StateStore(_path).Load();

        Assert.Empty(loaded.State.Apps);
        Assert.False(loaded.FromBackup, label);
        Assert.Contains(says, loaded.Problem);
        Assert.Contains("There was no backup", loaded.Problem);
        Assert.Single(CorruptFiles());
    }

    [Fact]
    public void A_missing_file_with_a_backup_is_reported_and_recovered_from_it()
    {
        var first = new StateStore(_path);
        first.Save(State(App("api")));
        first.Save(State(App("api"), App("web")));
        File.Delete(_path);

        StateLoad loaded = new StateStore(_path).Load();

        Assert.True(loaded.FromBackup);
        Assert.Equal(new[] { "api" }, loaded.State.Apps.Select(a => a.Name));
        Assert.Contains("was missing", loaded.Problem);
        Assert.Empty(CorruptFiles());
    }

    [Fact]
    public void A_bad_file_and_a_bad_backup_are_both_moved_aside()
    {
        WriteAsTheHostWould(_path, "{\"apps\":null}");
        WriteAsTheHostWould(_path + ".bak", "{\"apps\":[");

        StateLoad loaded = new StateStore(_path).Load();

        Assert.Empty(loaded.State.Apps);
        Assert.False(loaded.FromBackup);
        Assert.Contains("has no list of apps", loaded.Problem);
        Assert.Contains("Its backup", loaded.Problem);
        Assert.Equal(2, CorruptFiles().Length);
        Assert.False(File.Exists(_path));
        Assert.False(File.Exists(_path + ".bak"));
    }

    [Fact]
    public void After_a_recovery_the_next_write_keeps_the_recovered_version_as_backup()
    {
        var first = new StateStore(_path);
        first.Save(State(App("api")));
        first.Save(State(App("api"), App("web")));
        WriteAsTheHostWould(_path, "{\"apps\":null}");
        var next = new StateStore(_path);
        Assert.True(next.Load().FromBackup);

        next.Save(State(App("api"), App("worker")));

        Assert.Equal(new[] { "api", "worker" }, Names(_path));
        Assert.Equal(new[] { "api" }, Names(_path + ".bak"));
        Assert.Null(new StateStore(_path).Load().Problem);
    }

    [Fact]
    public void Unknown_properties_from_a_newer_version_are_not_corruption()
    {
        WriteAsTheHostWould(_path, "{\"apps\":[" + AppJson("api").TrimEnd('}') + ",\"future\":{\"x\":1}}],\"version\":9}");

        StateLoad loaded = new StateStore(_path).Load();

        Assert.Null(loaded.Problem);
        Assert.Equal("api", Assert.Single(loaded.State.Apps).Name);
    }

    [Fact]
    public void An_app_whose_script_is_gone_is_still_a_valid_definition()
    {
        // Not corruption: the host brings the app back as far as it can, and says what is missing when it starts it.
        AppDefinition app = App("api");
        app.Spec.Script = _folder.Combine("moved-away.js");
        new StateStore(_path).Save(State(app));

        StateLoad loaded = new StateStore(_path).Load();

        Assert.Null(loaded.Problem);
        Assert.Single(loaded.State.Apps);
    }

    [Fact]
    public void On_Unix_the_file_is_plain_JSON_of_the_apps()
    {
        if (OperatingSystem.IsWindows())
        {
            return; // encrypted there: see StateProtection
        }

        new StateStore(_path).Save(State(App("api", secret: "s3cret")));

        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(_path));
        Assert.Equal("s3cret", document.RootElement.GetProperty("apps")[0].GetProperty("spec").GetProperty("environment").GetProperty("SECRET").GetString());
    }

    private AppDefinition App(string name, int instances = 1, string? secret = null) => new()
    {
        Spec = new StartSpec
        {
            Name = name,
            Script = _script,
            WorkingDirectory = _folder.Path,
            Instances = instances,
            Environment = secret is null ? new Dictionary<string, string> { ["PATH"] = "/usr/bin" } : new Dictionary<string, string> { ["SECRET"] = secret },
        },
        NodePath = OperatingSystem.IsWindows() ? @"C:\Program Files\nodejs\node.exe" : "/usr/bin/node",
        Created = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero),
    };

    private static string AppJson(string name) =>
        "{\"spec\":{\"name\":\"" + name + "\",\"script\":\"/srv/app.js\",\"workingDirectory\":\"/srv\"},\"nodePath\":\"/usr/bin/node\"}";

    private static SavedState State(params AppDefinition[] apps) => new() { Apps = apps.ToList() };

    private string[] CorruptFiles() => Directory.GetFiles(_folder.Path, "state.json.corrupt-*");

    private static string[] Names(string path) =>
        JsonSerializer.Deserialize(ReadAsTheHostWould(path), HostJson.Default.SavedState)!.Apps.Select(a => a.Name).ToArray();

    /// <summary>Bad content as it would be on disk: on Windows encrypted like every state file, so that only its JSON is wrong.</summary>
    private static void WriteAsTheHostWould(string path, string content)
    {
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(content);
        File.WriteAllBytes(path, OperatingSystem.IsWindows() ? StateProtection.Protect(bytes) : bytes);
    }

    private static string ReadAsTheHostWould(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        return System.Text.Encoding.UTF8.GetString(OperatingSystem.IsWindows() ? StateProtection.Unprotect(bytes) : bytes);
    }
}
