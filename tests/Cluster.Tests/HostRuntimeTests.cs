extern alias client;

using System.Runtime.InteropServices;
using Cluster.Tests.Support;
using Xunit;
using HostBinary = client::Cluster.Client.HostBinary;
using HostRuntime = client::Cluster.Client.HostRuntime;
using HostUnavailableException = client::Cluster.Client.HostUnavailableException;

namespace Cluster.Tests;

/// <summary>Which host the launcher picks from the module, and the copy of it it runs from in CLUSTER_HOME.</summary>
public sealed class HostRuntimeTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private static string ThisPlatform => HostBinary.RuntimeIdentifiers().First();

    private string NewModule(params string[] rids)
    {
        string module = _folder.Combine("module-" + Guid.NewGuid().ToString("n")[..6]);
        foreach (string rid in rids)
        {
            string folder = Path.Combine(module, "hosts", rid);
            Directory.CreateDirectory(folder);
            File.WriteAllText(Path.Combine(folder, HostBinary.ExecutableName(rid)), "host for " + rid);
        }

        Directory.CreateDirectory(module);
        foreach (string name in HostRuntime.ModuleFiles)
        {
            File.WriteAllText(Path.Combine(module, name), "// " + Path.GetFileNameWithoutExtension(name));
        }
        return module;
    }

    [Fact]
    public void Musl_is_decided_by_the_C_library_this_process_is_mapped_with()
    {
        const string glibcMaps = "7f00-7f10 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libc.so.6\n";
        const string muslMaps = "7f00-7f10 r-xp 00000000 08:01 123 /lib/ld-musl-x86_64.so.1\n";
        string[] bothLoaders = { "/lib/ld-musl-x86_64.so.1", "/lib/ld-linux-x86-64.so.2" };

        Assert.True(HostBinary.IsMusl(muslMaps, _ => false, bothLoaders));
        Assert.False(HostBinary.IsMusl(glibcMaps, _ => false, new[] { "/lib/ld-musl-x86_64.so.1" }));
        Assert.True(HostBinary.IsMusl(null, _ => false, new[] { "/lib/ld-musl-aarch64.so.1" }));
        Assert.False(HostBinary.IsMusl(null, _ => false, bothLoaders));
        Assert.False(HostBinary.IsMusl(null, path => path == "/lib64/ld-linux-x86-64.so.2", new[] { "/lib/ld-musl-x86_64.so.1" }));
    }

    [Fact]
    public void Launcher_picks_the_host_of_this_platform()
    {
        string module = NewModule("win-arm64", ThisPlatform, "osx-x64");
        HostBinary binary = HostBinary.Locate(module);
        Assert.Equal(ThisPlatform, binary.RuntimeIdentifier);
        Assert.True(binary.IsNative);
        Assert.Equal(Path.Combine(module, "hosts", ThisPlatform), binary.Folder);
    }

    [Fact]
    public void Windows_on_Arm_runs_the_x64_host_under_emulation()
    {
        string[] wanted = HostBinary.RuntimeIdentifiers("win", Architecture.Arm64, Architecture.Arm64).ToArray();
        Assert.Equal(new[] { "win-arm64", "win-x64" }, wanted);

        string module = NewModule("win-x64", "linux-arm64", "osx-arm64");
        HostBinary binary = HostBinary.Locate(module, wanted);
        Assert.Equal("win-x64", binary.RuntimeIdentifier);
        Assert.Equal("cluster-host.exe", binary.Entry);
    }

    [Fact]
    public void Linux_on_Arm_has_no_x64_fallback()
    {
        string[] wanted = HostBinary.RuntimeIdentifiers("linux", Architecture.Arm64, Architecture.Arm64).ToArray();
        Assert.Equal(new[] { "linux-arm64" }, wanted);
        string module = NewModule("linux-x64");
        HostUnavailableException error = Assert.Throws<HostUnavailableException>(() => HostBinary.Locate(module, wanted));
        Assert.Equal("linux-arm64", error.Target);
    }

    [Fact]
    public void Launcher_names_the_supported_platforms_when_none_is_this_one()
    {
        string module = NewModule("osx-arm64", "win-arm64");
        HostUnavailableException error = Assert.Throws<HostUnavailableException>(() => HostBinary.Locate(module));
        Assert.Equal("HostUnsupportedPlatform", error.Code);
        Assert.Equal(ThisPlatform, error.Target);
        Assert.Contains("no host for this platform (" + ThisPlatform, error.Message);
        Assert.Contains("It carries hosts for osx-arm64, win-arm64.", error.Message);
    }

    [Fact]
    public void Launcher_falls_back_to_a_framework_dependent_host()
    {
        string module = NewModule("osx-arm64");
        Directory.CreateDirectory(Path.Combine(module, "hosts", "portable"));
        File.WriteAllText(Path.Combine(module, "hosts", "portable", "cluster-host.dll"), "managed");
        HostBinary binary = HostBinary.Locate(module);
        Assert.False(binary.IsNative);
        Assert.Equal("cluster-host.dll", binary.Entry);
    }

    [Fact]
    public void Runtime_copy_holds_the_host_and_scripts_with_their_modes_set()
    {
        string module = NewModule(ThisPlatform);
        string home = _folder.Combine("home");
        Directory.CreateDirectory(home);
        HostBinary binary = HostBinary.Locate(module);

        string runtime = HostRuntime.Ensure(home, "1.2.3", binary, module);

        Assert.Equal(Path.Combine(home, "runtime", "1.2.3"), runtime);
        Assert.Equal("host for " + ThisPlatform, File.ReadAllText(Path.Combine(runtime, binary.Entry)));
        Assert.Equal("// primary", File.ReadAllText(Path.Combine(runtime, "primary.js")));
        Assert.Equal("// drain", File.ReadAllText(Path.Combine(runtime, "drain.js")));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.Combine(runtime, binary.Entry)));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(runtime, "primary.js")));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(runtime));
        }

        Assert.Empty(Directory.GetDirectories(Path.Combine(home, "runtime"), ".tmp-*"));
    }

    [Fact]
    public void Runtime_copy_is_made_once_and_reused()
    {
        string module = NewModule(ThisPlatform);
        string home = Directory.CreateDirectory(_folder.Combine("home")).FullName;
        HostBinary binary = HostBinary.Locate(module);
        string first = HostRuntime.Ensure(home, "1.2.3", binary, module);
        DateTime written = File.GetLastWriteTimeUtc(Path.Combine(first, "primary.js"));
        File.SetLastWriteTimeUtc(Path.Combine(first, "primary.js"), written.AddHours(-1));

        string second = HostRuntime.Ensure(home, "1.2.3", binary, module);

        Assert.Equal(first, second);
        Assert.Equal(written.AddHours(-1), File.GetLastWriteTimeUtc(Path.Combine(second, "primary.js")));
    }

    [Fact]
    public void Another_build_of_the_same_version_gets_its_own_copy_and_a_changed_copy_is_replaced()
    {
        string module = NewModule(ThisPlatform);
        string home = Directory.CreateDirectory(_folder.Combine("home")).FullName;
        HostBinary binary = HostBinary.Locate(module);
        string first = HostRuntime.Ensure(home, "1.2.3", binary, module);

        File.WriteAllText(Path.Combine(module, "drain.js"), "// drain, rebuilt");
        string second = HostRuntime.Ensure(home, "1.2.3", binary, module);

        Assert.NotEqual(first, second);
        Assert.Matches(@"[/\\]1\.2\.3-[0-9a-f]{12}$", second);
        Assert.Equal("// drain", File.ReadAllText(Path.Combine(first, "drain.js")));
        Assert.Equal("// drain, rebuilt", File.ReadAllText(Path.Combine(second, "drain.js")));

        File.WriteAllText(Path.Combine(second, "primary.js"), "// changed after it was copied");
        string third = HostRuntime.Ensure(home, "1.2.3", binary, module);
        Assert.Equal(second, third);
        Assert.Equal("// primary", File.ReadAllText(Path.Combine(third, "primary.js")));
    }

    [Fact]
    public void A_module_without_its_scripts_is_refused_before_anything_is_copied()
    {
        string module = NewModule(ThisPlatform);
        File.Delete(Path.Combine(module, "drain.js"));
        string home = _folder.Combine("home");
        HostUnavailableException error = Assert.Throws<HostUnavailableException>(() => HostRuntime.Ensure(home, "1.2.3", HostBinary.Locate(module), module));
        Assert.Equal("HostFilesMissing", error.Code);
        Assert.False(Directory.Exists(Path.Combine(home, "runtime")));
    }
}
