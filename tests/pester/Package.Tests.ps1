#Requires -Version 7.0
# The package of build.ps1 -Task Package: a host for each of the seven platforms, installed the PowerShell way
# (Install-PSResource from a local repository, into a temporary module path), imported in a fresh pwsh, and the
# host's runtime copy in CLUSTER_HOME, which the apps keep using after the module is gone. build.ps1 -Task Test
# sets CLUSTER_PACKAGE_PATH to out/Cluster.<version>.nupkg and CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Add-Type -AssemblyName System.IO.Compression.FileSystem

    $script:Version = ([xml] (Get-Content -Raw (Join-Path $PSScriptRoot '../../Directory.Build.props'))).SelectSingleNode('/Project/PropertyGroup/Version').InnerText
    $script:PackagePath = if ($env:CLUSTER_PACKAGE_PATH) { $env:CLUSTER_PACKAGE_PATH } else { Join-Path $PSScriptRoot "../../out/Cluster.$Version.nupkg" }
    if (-not (Test-Path $PackagePath)) {
        throw "The package $PackagePath is missing: run build.ps1 -Task Package (build.ps1 -Task Test does)."
    }
    $script:BuiltModule = if ($env:CLUSTER_MODULE_PATH) { Split-Path -Parent $env:CLUSTER_MODULE_PATH } else { (Resolve-Path (Join-Path $PSScriptRoot '../../out/Cluster')).Path }
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/reload')).Path
    $script:Work = Join-Path ([IO.Path]::GetTempPath()) ('cl-pkg-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
    $null = New-Item -ItemType Directory -Path $Work
    $script:Homes = [System.Collections.Generic.List[string]]::new()

    # Runs a script in a fresh 'pwsh -NoProfile' with the given environment; returns its exit code, its output
    # and the JSON object it wrote last (if any).
    function Invoke-FreshPwsh {
        param([Parameter(Mandatory)] [string] $Script, [hashtable] $Environment = @{})
        $file = Join-Path $Work ("script-" + [guid]::NewGuid().ToString('n').Substring(0, 8) + '.ps1')
        Set-Content -Path $file -Value $Script
        $path = [Environment]::ProcessPath
        [string[]] $prefix = if ([IO.Path]::GetFileNameWithoutExtension($path) -eq 'pwsh') { @() } else { @(Join-Path $PSHOME 'pwsh.dll') }
        $saved = @{}
        foreach ($name in $Environment.Keys) {
            $saved[$name] = [Environment]::GetEnvironmentVariable($name)
            [Environment]::SetEnvironmentVariable($name, $Environment[$name])
        }
        try {
            $output = & $path @prefix -NoProfile -NonInteractive -File $file 2>&1 | ForEach-Object { "$_" }
            $exitCode = $LASTEXITCODE
        }
        finally {
            foreach ($name in $saved.Keys) { [Environment]::SetEnvironmentVariable($name, $saved[$name]) }
        }
        $json = $output | Where-Object { $_ -like '{*' } | Select-Object -Last 1
        [pscustomobject]@{
            ExitCode = $exitCode
            Output   = ($output | Out-String).Trim()
            Result   = if ($json) { $json | ConvertFrom-Json } else { $null }
        }
    }

    # A temporary HOME (and XDG folders under it) for PSResourceGet, which keeps its repository list and its
    # CurrentUser installs under the user's home: the tests never read or change the user's own.
    function New-UserEnvironment([string] $Name) {
        $userHome = Join-Path $Work $Name
        $null = New-Item -ItemType Directory -Path (Join-Path $userHome '.local/share')
        @{
            HOME = $userHome; XDG_DATA_HOME = (Join-Path $userHome '.local/share')
            XDG_CONFIG_HOME = (Join-Path $userHome '.config'); XDG_CACHE_HOME = (Join-Path $userHome '.cache')
        }
    }

    function Join-Environment([hashtable] $Base, [hashtable] $More) {
        $all = $Base.Clone()
        foreach ($name in $More.Keys) { $all[$name] = $More[$name] }
        $all
    }

    function New-PackageTestHome {
        $path = Join-Path ([IO.Path]::GetTempPath()) ('cl-' + [guid]::NewGuid().ToString('n').Substring(0, 10))
        $Homes.Add($path)
        $path
    }

    # The command lines of the processes that name a path (the host, the Node primaries and their workers).
    function Get-CommandLineNaming {
        param([Parameter(Mandatory)] [string] $Path)
        foreach ($folder in Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -Match '^\d+$') {
            $commandLine = try { [IO.File]::ReadAllText("$($folder.FullName)/cmdline").Replace([char] 0, ' ') } catch { '' }
            if ($commandLine.Contains($Path) -and [int] $folder.Name -ne $PID) { $commandLine }
        }
    }

    # Format and architecture of an executable, from its header: ELF e_machine (and its program interpreter),
    # PE Machine, Mach-O cputype.
    function Get-ExecutableHeader {
        param([Parameter(Mandatory)] [byte[]] $Bytes)
        if ($Bytes[0] -eq 0x7F -and $Bytes[1] -eq 0x45 -and $Bytes[2] -eq 0x4C -and $Bytes[3] -eq 0x46) {
            $machine = [BitConverter]::ToUInt16($Bytes, 18)
            $interpreter = $null
            $programHeaders = [BitConverter]::ToUInt64($Bytes, 0x20)
            $entrySize = [BitConverter]::ToUInt16($Bytes, 0x36)
            $count = [BitConverter]::ToUInt16($Bytes, 0x38)
            for ($i = 0; $i -lt $count; $i++) {
                $at = [int] ($programHeaders + $i * $entrySize)
                if ([BitConverter]::ToUInt32($Bytes, $at) -eq 3) {
                    # PT_INTERP: the dynamic loader, which names the C library the program was linked against.
                    $offset = [int] [BitConverter]::ToUInt64($Bytes, $at + 8)
                    $size = [int] [BitConverter]::ToUInt64($Bytes, $at + 32)
                    $interpreter = [Text.Encoding]::ASCII.GetString($Bytes, $offset, $size).TrimEnd([char] 0)
                }
            }
            $architecture = switch ($machine) { 0x3E { 'x64' } 0xB7 { 'arm64' } default { "elf-machine-$machine" } }
            return [pscustomobject]@{ Format = 'ELF'; Architecture = $architecture; Interpreter = $interpreter }
        }
        if ($Bytes[0] -eq 0x4D -and $Bytes[1] -eq 0x5A) {
            $pe = [BitConverter]::ToInt32($Bytes, 0x3C)
            [string] $signature = [Text.Encoding]::ASCII.GetString($Bytes, $pe, 4)
            $machine = [BitConverter]::ToUInt16($Bytes, $pe + 4)
            $architecture = switch ($machine) { 0x8664 { 'x64' } 0xAA64 { 'arm64' } default { "pe-machine-$machine" } }
            return [pscustomobject]@{ Format = if ($signature -eq "PE`0`0") { 'PE' } else { 'MZ' }; Architecture = $architecture; Interpreter = $null }
        }
        if ([BitConverter]::ToUInt32($Bytes, 0) -eq 0xFEEDFACFu) {
            $cpu = [BitConverter]::ToUInt32($Bytes, 4)
            $architecture = switch ($cpu) { 0x01000007 { 'x64' } 0x0100000C { 'arm64' } default { "macho-cpu-$cpu" } }
            return [pscustomobject]@{ Format = 'Mach-O'; Architecture = $architecture; Interpreter = $null }
        }
        [pscustomobject]@{ Format = 'unknown'; Architecture = $null; Interpreter = $null }
    }

    # The first bytes of a package entry: enough for every header read above.
    function Read-EntryHead {
        param([Parameter(Mandatory)] $Entry, [int] $Count = 65536)
        $stream = $Entry.Open()
        try {
            $buffer = [byte[]]::new([Math]::Min($Count, $Entry.Length))
            $read = 0
            while ($read -lt $buffer.Length) {
                $n = $stream.Read($buffer, $read, $buffer.Length - $read)
                if ($n -eq 0) { break }
                $read += $n
            }
            $buffer
        }
        finally {
            $stream.Dispose()
        }
    }
}

AfterAll {
    foreach ($clusterHome in $Homes) {
        if (Test-Path (Join-Path $clusterHome 'host.lock')) {
            $hostPid = (Get-Content -Raw (Join-Path $clusterHome 'host.lock') -ErrorAction SilentlyContinue) -as [int]
            if ($hostPid) { Stop-Process -Id $hostPid -Force -ErrorAction SilentlyContinue }
        }
        foreach ($folder in Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -Match '^\d+$') {
            $commandLine = try { [IO.File]::ReadAllText("$($folder.FullName)/cmdline") } catch { '' }
            if ($commandLine.Contains($clusterHome) -and [int] $folder.Name -ne $PID) { Stop-Process -Id ([int] $folder.Name) -Force -ErrorAction SilentlyContinue }
        }
        Remove-Item -Recurse -Force $clusterHome -ErrorAction SilentlyContinue
    }
    Remove-Item -Recurse -Force $Work -ErrorAction SilentlyContinue
}

Describe 'The package' {
    BeforeAll {
        $script:Zip = [System.IO.Compression.ZipFile]::OpenRead($PackagePath)
        $reader = [IO.StreamReader]::new($Zip.GetEntry('hosts/hosts.json').Open())
        try { $script:HostList = $reader.ReadToEnd() | ConvertFrom-Json -AsHashtable } finally { $reader.Dispose() }
    }
    AfterAll {
        $Zip.Dispose()
    }

    It 'is named for the module version' {
        Split-Path -Leaf $PackagePath | Should -Be "Cluster.$Version.nupkg"
    }

    It 'carries the module: manifest, cmdlets, Node primary, drain preload and help' {
        $names = $Zip.Entries.FullName
        foreach ($file in 'Cluster.psd1', 'Cluster.dll', 'primary.js', 'drain.js', 'Cluster.format.ps1xml', 'en-US/Cluster.dll-Help.xml') {
            $file | Should -BeIn $names
        }
    }

    It 'carries a host for <Rid> that is a <Format> <Architecture> executable' -ForEach @(
        @{ Rid = 'win-x64'; Format = 'PE'; Architecture = 'x64'; Loader = $null }
        @{ Rid = 'linux-x64'; Format = 'ELF'; Architecture = 'x64'; Loader = 'ld-linux-x86-64' }
        @{ Rid = 'linux-arm64'; Format = 'ELF'; Architecture = 'arm64'; Loader = 'ld-linux-aarch64' }
        @{ Rid = 'linux-musl-x64'; Format = 'ELF'; Architecture = 'x64'; Loader = 'ld-musl-x86_64' }
        @{ Rid = 'osx-x64'; Format = 'Mach-O'; Architecture = 'x64'; Loader = $null }
        @{ Rid = 'osx-arm64'; Format = 'Mach-O'; Architecture = 'arm64'; Loader = $null }
    ) {
        $name = "hosts/$Rid/" + ($Rid -like 'win-*' ? 'cluster-host.exe' : 'cluster-host')
        $HostList.Keys | Should -Contain $Rid -Because 'hosts/hosts.json accounts for every platform'
        $entry = $Zip.GetEntry($name)
        $entry | Should -Not -BeNullOrEmpty -Because "the package must hold $name"
        $header = Get-ExecutableHeader (Read-EntryHead $entry)
        $header.Format | Should -Be $Format
        $header.Architecture | Should -Be $Architecture
        if ($Loader) { $header.Interpreter | Should -Match ([regex]::Escape($Loader)) -Because 'the C library decides which Linux the host runs on' }
        @($Zip.Entries | Where-Object FullName -Like "hosts/$Rid/*").Count | Should -Be 1 -Because 'each host is one self-contained file'
    }

    It 'lists win-arm64 as running the win-x64 host under emulation, which the package carries' {
        $HostList['win-arm64'].build | Should -Be 'Emulated'
        $HostList['win-arm64'].runs | Should -Be 'win-x64'
        $Zip.GetEntry('hosts/win-x64/cluster-host.exe') | Should -Not -BeNullOrEmpty
        $Zip.GetEntry('hosts/win-arm64/cluster-host.exe') | Should -BeNullOrEmpty -Because 'the launcher falls back to the x64 host on Windows on Arm by itself'
    }

    It 'accounts for exactly the seven platforms, with a native host for this one and no framework-dependent one' {
        $seven = @('linux-arm64', 'linux-musl-x64', 'linux-x64', 'osx-arm64', 'osx-x64', 'win-arm64', 'win-x64')
        @($HostList.Keys | Sort-Object) | Should -Be $seven
        $folders = @($Zip.Entries.FullName | Where-Object { $_ -like 'hosts/*/*' } | ForEach-Object { $_.Split('/')[1] } | Sort-Object -Unique)
        $folders | Should -Be @($seven | Where-Object { $_ -ne 'win-arm64' })
        foreach ($rid in $seven | Where-Object { $_ -notin 'win-arm64', 'linux-x64' }) {
            $HostList[$rid].build | Should -Be 'SingleFile' -Because "$rid is a self-contained, trimmed single file"
        }
        $HostList['linux-x64'].build | Should -Be 'NativeAot'
    }
}

Describe 'Installed with Install-PSResource from a local repository' -Skip:(-not $IsLinux) {
    BeforeAll {
        # PSResourceGet keeps its repositories, and installs for the current user, under the user's home: a
        # temporary HOME (and XDG folders under it) keeps this install, and its repository, apart from the user's own.
        $script:UserEnvironment = New-UserEnvironment 'home'
        $script:DataHome = $UserEnvironment.XDG_DATA_HOME
        $script:Repository = Join-Path $Work 'repository'
        $null = New-Item -ItemType Directory -Path $Repository
        Copy-Item $PackagePath $Repository
        $script:InstallHome = New-PackageTestHome
        $script:Port = Get-FreePort

        $install = Invoke-FreshPwsh -Environment (Join-Environment $UserEnvironment @{ CLUSTER_TEST_REPOSITORY = $Repository }) -Script @'
$ErrorActionPreference = 'Stop'
Register-PSResourceRepository -Name ClusterTest -Uri $env:CLUSTER_TEST_REPOSITORY -Trusted
Install-PSResource -Name Cluster -Repository ClusterTest -TrustRepository -Scope CurrentUser -Quiet
$installed = Get-InstalledPSResource -Name Cluster
@{ Location = $installed.InstalledLocation; Version = "$($installed.Version)" } | ConvertTo-Json -Compress
'@
        $install.ExitCode | Should -Be 0 -Because $install.Output
        $script:Installed = Join-Path $install.Result.Location "Cluster/$Version"
        $script:InstalledHost = Join-Path $Installed 'hosts/linux-x64/cluster-host'
        # The premise of the test that follows: a package carries no file modes, so the host that comes out of it
        # is not executable. Should an installer ever keep the bit, it is taken away here.
        if ((Get-Item $InstalledHost).UnixFileMode.HasFlag([IO.UnixFileMode]::UserExecute)) {
            & chmod 644 $InstalledHost
        }

        $script:Session = Invoke-FreshPwsh -Environment (Join-Environment $UserEnvironment @{ CLUSTER_HOME = $InstallHome; CLUSTER_TEST_PORT = "$Port"; CLUSTER_TEST_SCRIPT = (Join-Path $Fixtures 'app.js') }) -Script @'
$ErrorActionPreference = 'Stop'
Import-Module Cluster
$module = Get-Module Cluster
$started = Start-ClusterApp -Path $env:CLUSTER_TEST_SCRIPT -Name pkg -Instances 2 -Environment @{ PORT = $env:CLUSTER_TEST_PORT }
$before = Invoke-RestMethod "http://127.0.0.1:$($env:CLUSTER_TEST_PORT)/" -DisableKeepAlive -TimeoutSec 10
$reloaded = Invoke-ClusterReload -Name pkg
$after = Invoke-RestMethod "http://127.0.0.1:$($env:CLUSTER_TEST_PORT)/" -DisableKeepAlive -TimeoutSec 10
$hostInfo = Get-ClusterHost
@{
    ModuleBase = $module.ModuleBase
    Version = "$($module.Version)"
    StartedStatus = "$($started.Status)"
    StartedPids = @($started.Instances.Pid)
    ReloadedStatus = "$($reloaded.Status)"
    ReloadedPids = @($reloaded.Instances.Pid)
    Before = $before.pid
    After = $after.pid
    HostPid = $hostInfo.Pid
    HostRuntime = $hostInfo.Runtime
    HostVersion = $hostInfo.Version
} | ConvertTo-Json -Compress
'@
    }

    It 'installs the module version into the temporary module path' {
        $Installed | Should -BeLike "$DataHome*"
        Join-Path $Installed 'Cluster.psd1' | Should -Exist
    }

    It 'imports by name in a fresh pwsh, from that path' {
        $Session.ExitCode | Should -Be 0 -Because $Session.Output
        $Session.Result.ModuleBase | Should -Be $Installed
        $Session.Result.Version | Should -Be $Version
    }

    It 'starts an app and reloads it, with a host whose executable bit is missing in the module' {
        $Session.Result.StartedStatus | Should -Be 'Online' -Because $Session.Output
        (Get-Item $InstalledHost).UnixFileMode.HasFlag([IO.UnixFileMode]::UserExecute) | Should -BeFalse
        $Session.Result.Before | Should -BeIn $Session.Result.StartedPids
        $Session.Result.ReloadedStatus | Should -Be 'Online'
        $Session.Result.After | Should -BeIn $Session.Result.ReloadedPids
        foreach ($old in $Session.Result.StartedPids) { $old | Should -Not -BeIn $Session.Result.ReloadedPids }
    }

    It 'runs the host, the primary and the drain preload from CLUSTER_HOME/runtime/<version>, never from the module folder' {
        $runtime = Join-Path $InstallHome "runtime/$Version"
        $Session.Result.HostRuntime | Should -Be $runtime -Because 'Get-ClusterHost says where the host runs from'
        $Session.Result.HostVersion | Should -Be $Version
        (Get-Item "/proc/$($Session.Result.HostPid)/exe").Target | Should -Be (Join-Path $runtime 'cluster-host')
        (Get-Item (Join-Path $runtime 'cluster-host')).UnixFileMode.HasFlag([IO.UnixFileMode]::UserExecute) | Should -BeTrue
        (Get-Item $runtime).UnixFileMode | Should -Be ([IO.UnixFileMode] 'UserRead, UserWrite, UserExecute')
        $commandLines = @(Get-CommandLineNaming -Path $InstallHome)
        @($commandLines | Where-Object { $_ -like "*$runtime/primary.js*" }).Count | Should -BeGreaterThan 0 -Because 'the primary runs from the runtime copy'
        @($commandLines | Where-Object { $_ -like "*--require $runtime/drain.js*" }).Count | Should -Be 2 -Because 'both workers preload the runtime copy of drain.js'
        @(Get-CommandLineNaming -Path $Installed).Count | Should -Be 0 -Because 'no running process refers to the installed module'
    }

    It 'keeps reloading and restarting crashed workers after the module is uninstalled' {
        $uninstall = Invoke-FreshPwsh -Environment $UserEnvironment -Script @'
$ErrorActionPreference = 'Stop'
Uninstall-PSResource -Name Cluster -Scope CurrentUser
'@
        $uninstall.ExitCode | Should -Be 0 -Because $uninstall.Output
        $Installed | Should -Not -Exist

        # The same version, built: it finds the running host and asks it; the host forks from its own copy.
        $after = Invoke-FreshPwsh -Environment @{ CLUSTER_HOME = $InstallHome; CLUSTER_TEST_MODULE = (Join-Path $BuiltModule 'Cluster.psd1') } -Script @'
$ErrorActionPreference = 'Stop'
Import-Module $env:CLUSTER_TEST_MODULE
$hostPid = (Get-ClusterHost).Pid
$reloaded = Invoke-ClusterReload -Name pkg
$victim = $reloaded.Instances[0].Pid
Stop-Process -Id $victim -Force
$deadline = [DateTime]::UtcNow.AddSeconds(20)
do {
    Start-Sleep -Milliseconds 200
    $app = Get-ClusterApp pkg
} until (($app.Status -eq 'Online' -and $victim -notin $app.Instances.Pid) -or [DateTime]::UtcNow -gt $deadline)
@{ HostPid = $hostPid; ReloadedStatus = "$($reloaded.Status)"; Victim = $victim; Status = "$($app.Status)"; Pids = @($app.Instances.Pid) } | ConvertTo-Json -Compress
'@
        $after.ExitCode | Should -Be 0 -Because $after.Output
        $after.Result.HostPid | Should -Be $Session.Result.HostPid -Because 'the host that the installed module started is still the one serving'
        $after.Result.ReloadedStatus | Should -Be 'Online'
        $after.Result.Status | Should -Be 'Online'
        $after.Result.Victim | Should -Not -BeIn $after.Result.Pids
        @($after.Result.Pids).Count | Should -Be 2
    }
}

Describe "The README's Install section" -Skip:(-not $IsLinux) {
    It 'installs and imports the package as written, from a folder with out/Cluster.<version>.nupkg' {
        $readme = Get-Content -Raw (Join-Path $PSScriptRoot '../../README.md')
        $section = [regex]::Match($readme, '(?s)\n## Install\n(.*?)\n## ').Groups[1].Value
        $blocks = @([regex]::Matches($section, '(?s)```powershell\n(.*?)```') | ForEach-Object { $_.Groups[1].Value })
        $blocks.Count | Should -Be 2 -Because 'the section has one block for a gallery and one for the package file'
        $blocks[0] | Should -Match 'Install-PSResource -Name Cluster'
        $fromFile = $blocks[1]
        $fromFile | Should -Match ([regex]::Escape('./out/Cluster.*.nupkg'))

        $folder = Join-Path $Work 'readme'
        $null = New-Item -ItemType Directory -Path (Join-Path $folder 'out')
        Copy-Item $PackagePath (Join-Path $folder 'out')
        $user = New-UserEnvironment 'readme-home'
        $clusterHome = New-PackageTestHome
        $result = Invoke-FreshPwsh -Environment (Join-Environment $user @{ CLUSTER_HOME = $clusterHome; CLUSTER_TEST_FOLDER = $folder }) -Script (@'
$ErrorActionPreference = 'Stop'
Set-Location $env:CLUSTER_TEST_FOLDER
'@ + "`n" + $fromFile + "`n" + @'
$hostInfo = Get-ClusterHost
$module = Get-Module Cluster
Stop-ClusterHost -Confirm:$false
@{ ModuleBase = $module.ModuleBase; Version = "$($module.Version)"; Runtime = $hostInfo.Runtime } | ConvertTo-Json -Compress
'@)
        $result.ExitCode | Should -Be 0 -Because $result.Output
        $result.Result.ModuleBase | Should -BeLike "$($user.HOME)*" -Because 'the module was installed for the (temporary) user'
        $result.Result.Version | Should -Be $Version
        $result.Result.Runtime | Should -Be (Join-Path $clusterHome "runtime/$Version")
    }
}

Describe 'The runtime copy' -Skip:(-not $IsLinux) {
    It 'goes to <version>-<hash> for another build of the same version, and leaves the first copy alone' {
        $clusterHome = New-PackageTestHome
        $changed = Join-Path $Work 'changed/Cluster'
        $null = New-Item -ItemType Directory -Path (Split-Path $changed)
        Copy-Item $BuiltModule $changed -Recurse
        Add-Content -Path (Join-Path $changed 'primary.js') -Value '// another build'

        $script = @'
$ErrorActionPreference = 'Stop'
Import-Module $env:CLUSTER_TEST_MODULE
$hostInfo = Get-ClusterHost
$exe = (Get-Item "/proc/$($hostInfo.Pid)/exe").Target
Stop-ClusterHost -Confirm:$false
@{ Exe = $exe } | ConvertTo-Json -Compress
'@
        $first = Invoke-FreshPwsh -Environment @{ CLUSTER_HOME = $clusterHome; CLUSTER_TEST_MODULE = (Join-Path $BuiltModule 'Cluster.psd1') } -Script $script
        $second = Invoke-FreshPwsh -Environment @{ CLUSTER_HOME = $clusterHome; CLUSTER_TEST_MODULE = (Join-Path $changed 'Cluster.psd1') } -Script $script
        $first.ExitCode | Should -Be 0 -Because $first.Output
        $second.ExitCode | Should -Be 0 -Because $second.Output

        $first.Result.Exe | Should -Be (Join-Path $clusterHome "runtime/$Version/cluster-host")
        $second.Result.Exe | Should -Match ([regex]::Escape((Join-Path $clusterHome "runtime/$Version-")) + '[0-9a-f]{12}/cluster-host$')
        Get-Content -Raw (Join-Path $clusterHome "runtime/$Version/primary.js") | Should -Not -Match 'another build'
        Get-Content -Raw (Join-Path (Split-Path $second.Result.Exe) 'primary.js') | Should -Match 'another build'
        @(Get-ChildItem (Join-Path $clusterHome 'runtime') -Force | Where-Object Name -Like '.tmp-*').Count | Should -Be 0 -Because 'no temporary copy is left behind'
    }

    It 'fails with an error naming the supported platforms when the module has no host for this one' {
        $rid = [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier
        $clusterHome = New-PackageTestHome
        $foreign = Join-Path $Work 'foreign/Cluster'
        $null = New-Item -ItemType Directory -Path (Split-Path $foreign)
        Copy-Item $BuiltModule $foreign -Recurse
        Remove-Item (Join-Path $foreign 'hosts') -Recurse -Force
        foreach ($file in 'hosts/win-arm64/cluster-host.exe', 'hosts/osx-arm64/cluster-host') {
            $null = New-Item -ItemType File -Path (Join-Path $foreign $file) -Force
        }

        $result = Invoke-FreshPwsh -Environment @{ CLUSTER_HOME = $clusterHome; CLUSTER_TEST_MODULE = (Join-Path $foreign 'Cluster.psd1') } -Script @'
Import-Module $env:CLUSTER_TEST_MODULE
try { Get-ClusterApp -ErrorAction Stop; @{ Error = $null } | ConvertTo-Json -Compress }
catch { @{ Id = $_.FullyQualifiedErrorId; Category = "$($_.CategoryInfo.Category)"; Message = $_.Exception.Message; Target = "$($_.TargetObject)" } | ConvertTo-Json -Compress }
'@
        $result.Result.Id | Should -Be 'GetClusterAppHostUnsupportedPlatform,Cluster.Commands.GetClusterAppCommand' -Because $result.Output
        $result.Result.Category | Should -Be 'NotInstalled'
        $result.Result.Target | Should -Be $rid
        $result.Result.Message | Should -Match "no host for this platform \($rid"
        $result.Result.Message | Should -Match 'osx-arm64, win-arm64'
        Join-Path $clusterHome 'runtime' | Should -Not -Exist -Because 'nothing is copied for a platform with no host'
    }
}

Describe 'Upgrading under load to a newer version of the module' -Skip:(-not $IsLinux) {
    BeforeAll {
        # Version N is the package; N+1 is the same sources built with the next patch version (its cmdlets, and a
        # framework-dependent host, quicker to build than a native one), published with Publish-PSResource to the
        # same local repository. Both are installed and removed with PSResourceGet, under a temporary HOME.
        $current = [version] $Version
        $script:Next = "$($current.Major).$($current.Minor).$($current.Build + 1)"
        $repo = (Resolve-Path (Join-Path $PSScriptRoot '../..')).Path
        $artifacts = Join-Path $Work 'next-artifacts'
        $hostOut = Join-Path $Work 'next-host'
        $build = & dotnet build (Join-Path $repo 'src/Cluster') -c Release "-p:Version=$Next" --artifacts-path $artifacts -nologo 2>&1 | Out-String
        $LASTEXITCODE | Should -Be 0 -Because $build
        $publish = & dotnet publish (Join-Path $repo 'src/Cluster.Host') -c Release "-p:Version=$Next" --artifacts-path $artifacts -o $hostOut -nologo 2>&1 | Out-String
        $LASTEXITCODE | Should -Be 0 -Because $publish

        $script:ModuleNext = Join-Path $Work 'next/Cluster'
        $null = New-Item -ItemType Directory -Path (Split-Path $ModuleNext)
        Copy-Item $BuiltModule $ModuleNext -Recurse
        Copy-Item (Join-Path $artifacts 'bin/Cluster/release/Cluster.dll') $ModuleNext -Force
        $manifest = Join-Path $ModuleNext 'Cluster.psd1'
        (Get-Content -Raw $manifest) -replace "ModuleVersion(\s*)=(\s*)'[^']+'", "ModuleVersion`$1=`$2'$Next'" | Set-Content -Path $manifest -NoNewline
        Remove-Item (Join-Path $ModuleNext 'hosts') -Recurse -Force
        $portable = New-Item -ItemType Directory -Path (Join-Path $ModuleNext 'hosts/portable')
        foreach ($file in 'cluster-host.dll', 'cluster-host.runtimeconfig.json', 'cluster-host.deps.json', 'Serilog.dll', 'Serilog.Sinks.File.dll') {
            Copy-Item (Join-Path $hostOut $file) $portable
        }

        $script:UpgradeUser = New-UserEnvironment 'upgrade-home'
        $upgradeRepository = Join-Path $Work 'upgrade-repository'
        $null = New-Item -ItemType Directory -Path $upgradeRepository
        Copy-Item $PackagePath $upgradeRepository
        $script:UpgradeHome = New-PackageTestHome
        $script:UpgradePort = Get-FreePort
        $script:Node = (Get-Command -Name node -CommandType Application | Select-Object -First 1).Source

        # PSResourceGet in a fresh pwsh under the temporary HOME; returns the exit code and output.
        function Invoke-PSResourceGet([string] $Script) {
            Invoke-FreshPwsh -Environment (Join-Environment $UpgradeUser @{ CLUSTER_TEST_VERSION = $Version; CLUSTER_TEST_NEXT = $Next; CLUSTER_TEST_NEXT_FOLDER = $ModuleNext }) -Script (@'
$ErrorActionPreference = 'Stop'
'@ + "`n" + $Script)
        }

        $setUp = Invoke-PSResourceGet (@'
Register-PSResourceRepository -Name ClusterUpgrade -Uri '{0}' -Trusted
Publish-PSResource -Path $env:CLUSTER_TEST_NEXT_FOLDER -Repository ClusterUpgrade
Install-PSResource -Name Cluster -Version $env:CLUSTER_TEST_VERSION -Repository ClusterUpgrade -TrustRepository -Scope CurrentUser -Quiet
@{{ Versions = @(Find-PSResource -Name Cluster -Version '*' -Repository ClusterUpgrade | ForEach-Object {{ "$($_.Version)" }}) }} | ConvertTo-Json -Compress
'@ -f $upgradeRepository)
        $setUp.ExitCode | Should -Be 0 -Because $setUp.Output
        @($setUp.Result.Versions | Sort-Object) | Should -Be @($Version, $Next | Sort-Object) -Because 'the repository holds N and N+1'
        $script:InstalledN = Join-Path $UpgradeUser.XDG_DATA_HOME "powershell/Modules/Cluster/$Version"

        # A fresh pwsh that imports the installed module of the given version and runs the script.
        function Invoke-WithModule([string] $ModuleVersion, [string] $Script) {
            Invoke-FreshPwsh -Environment (Join-Environment $UpgradeUser @{ CLUSTER_HOME = $UpgradeHome; CLUSTER_TEST_VERSION = $ModuleVersion; CLUSTER_TEST_PORT = "$UpgradePort"; CLUSTER_TEST_SCRIPT = (Join-Path $Fixtures 'app.js') }) -Script (@'
$ErrorActionPreference = 'Stop'
Import-Module Cluster -RequiredVersion $env:CLUSTER_TEST_VERSION
'@ + "`n" + $Script)
        }

        function Start-Load {
            $folder = Join-Path $Work ('load-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
            $null = New-Item -ItemType Directory -Path $folder
            $load = [pscustomobject]@{ Stop = "$folder/stop"; Ready = "$folder/ready"; Output = "$folder/result.json"; Errors = "$folder/stderr.txt"; Process = $null }
            $load.Process = Start-Process -FilePath $Node -PassThru -RedirectStandardOutput $load.Output -RedirectStandardError $load.Errors -ArgumentList @(
                (Join-Path $Fixtures 'load.js'), '--port', $UpgradePort, '--connection', 'close', '--concurrency', 4,
                '--stop', $load.Stop, '--ready', $load.Ready, '--ready-after', 50, '--max-seconds', 60)
            Wait-Until { (Test-Path $load.Ready) -or $load.Process.HasExited } -Because 'the load client to get its first answers'
            $load
        }

        function Stop-Load($Load) {
            $null = New-Item -ItemType File -Path $Load.Stop
            $Load.Process.WaitForExit(70000) | Should -BeTrue
            Get-Content -Raw $Load.Output | ConvertFrom-Json -AsHashtable
        }
    }

    It 'hands over from the host of N to the host of N+1 with every request answered and the same workers' {
        $before = Invoke-WithModule $Version @'
$app = Start-ClusterApp -Path $env:CLUSTER_TEST_SCRIPT -Name upgrade -Instances 2 -Environment @{ PORT = $env:CLUSTER_TEST_PORT }
@{ HostPid = (Get-ClusterHost).Pid; Pids = @($app.Instances.Pid); Status = "$($app.Status)" } | ConvertTo-Json -Compress
'@
        $before.Result.Status | Should -Be 'Online' -Because $before.Output

        $load = Start-Load
        $install = Invoke-PSResourceGet 'Install-PSResource -Name Cluster -Version $env:CLUSTER_TEST_NEXT -Repository ClusterUpgrade -TrustRepository -Scope CurrentUser -Quiet'
        $install.ExitCode | Should -Be 0 -Because $install.Output
        $after = Invoke-WithModule $Next @'
$app = Get-ClusterApp upgrade -WarningVariable warned
$hostInfo = Get-ClusterHost
@{ HostPid = $hostInfo.Pid; Version = $hostInfo.Version; Runtime = $hostInfo.Runtime; Pids = @($app.Instances.Pid); Status = "$($app.Status)"; Warnings = @($warned | ForEach-Object Message) } | ConvertTo-Json -Compress
'@
        Start-Sleep -Milliseconds 500
        $result = Stop-Load $load

        $after.ExitCode | Should -Be 0 -Because $after.Output
        $after.Result.Version | Should -Be $Next
        $after.Result.HostPid | Should -Not -Be $before.Result.HostPid
        Test-ProcessAlive -Id $before.Result.HostPid | Should -BeFalse -Because 'the old host exits once it has handed over'
        $after.Result.Runtime | Should -Be (Join-Path $UpgradeHome "runtime/$Next")
        $after.Result.Status | Should -Be 'Online'
        @($after.Result.Pids | Sort-Object) | Should -Be @($before.Result.Pids | Sort-Object) -Because 'the new host adopted the workers'
        @($after.Result.Warnings).Count | Should -Be 0
        Write-Host "Handover $Version -> $Next under load: $($result.ok) requests answered, $($result.failed) failed; workers $(@($before.Result.Pids) -join ', ') before, $(@($after.Result.Pids) -join ', ') after"
        $result.failed | Should -Be 0 -Because "no request may fail during the handover: $($result.errors | ConvertTo-Json -Compress)"
        $result.ok | Should -BeGreaterThan 50
    }

    It 'reloads and restarts a crashed worker after version N is removed' {
        $InstalledN | Should -Exist
        $uninstall = Invoke-PSResourceGet 'Uninstall-PSResource -Name Cluster -Version $env:CLUSTER_TEST_VERSION -Scope CurrentUser'
        $uninstall.ExitCode | Should -Be 0 -Because $uninstall.Output
        $InstalledN | Should -Not -Exist
        $load = Start-Load
        $run = Invoke-WithModule $Next @'
$reloaded = Invoke-ClusterReload -Name upgrade
$victim = $reloaded.Instances[0].Pid
Stop-Process -Id $victim -Force
$deadline = [DateTime]::UtcNow.AddSeconds(20)
do {
    Start-Sleep -Milliseconds 200
    $app = Get-ClusterApp upgrade
} until (($app.Status -eq 'Online' -and $victim -notin $app.Instances.Pid) -or [DateTime]::UtcNow -gt $deadline)
@{ Reloaded = "$($reloaded.Status)"; Victim = $victim; Status = "$($app.Status)"; Pids = @($app.Instances.Pid) } | ConvertTo-Json -Compress
'@
        $result = Stop-Load $load
        $run.ExitCode | Should -Be 0 -Because $run.Output
        $run.Result.Reloaded | Should -Be 'Online'
        $run.Result.Status | Should -Be 'Online'
        $run.Result.Victim | Should -Not -BeIn $run.Result.Pids
        # Failed requests are not counted here: the worker killed with SIGKILL drops the requests it was serving.
        $result.ok | Should -BeGreaterThan 0
        @(Get-CommandLineNaming -Path $InstalledN).Count | Should -Be 0 -Because 'nothing runs from the removed module'
        @(Get-CommandLineNaming -Path (Join-Path $UpgradeHome "runtime/$Next/drain.js")).Count | Should -Be 2 -Because 'the new workers preload the new runtime copy'
        Join-Path $UpgradeHome "runtime/$Version/primary.js" | Should -Exist -Because 'the adopted primary still runs the copy of N, which stays'
    }

    It 'says clearly, and still works, when an older module finds the newer host' {
        $old = Invoke-FreshPwsh -Environment @{ CLUSTER_HOME = $UpgradeHome; CLUSTER_TEST_MODULE = (Join-Path $BuiltModule 'Cluster.psd1') } -Script @'
$ErrorActionPreference = 'Stop'
Import-Module $env:CLUSTER_TEST_MODULE
$app = Get-ClusterApp upgrade -WarningVariable warned
@{ Status = "$($app.Status)"; Version = (Get-ClusterHost -WarningAction SilentlyContinue).Version; Warnings = @($warned | ForEach-Object Message) } | ConvertTo-Json -Compress
'@
        $old.ExitCode | Should -Be 0 -Because $old.Output
        $old.Result.Status | Should -Be 'Online'
        $old.Result.Version | Should -Be $Next -Because 'an older module never hands over to its own, older host'
        @($old.Result.Warnings) | Should -HaveCount 1
        $old.Result.Warnings[0] | Should -Match "is version $([regex]::Escape($Next)), newer than this module \($([regex]::Escape($Version))\)"

        $stop = Invoke-WithModule $Next 'Stop-ClusterHost -Confirm:$false'
        $stop.ExitCode | Should -Be 0 -Because $stop.Output
    }
}
