#Requires -Version 7.2
<#
.SYNOPSIS
    Builds, tests and demonstrates the Cluster module.
.DESCRIPTION
    Build  compiles the cmdlets, publishes the host for this platform (Native AOT where possible) and
           assembles out/Cluster from a named list of files.
    Package
           Build, then out/Cluster.<version>.nupkg (PSResourceGet's Publish-PSResource to a local repository)
           with a host for every platform the module supports: this platform's from Build, the others
           self-contained, trimmed single files. Those are built once per set of inputs and kept in the host
           cache ($env:CLUSTER_HOST_CACHE, else the user's cache folder: ~/.cache/cluster/hosts on Linux).
    Test   Build and Package, then the xunit suite and the Pester suite (against the built module and the
           package, in a fresh pwsh); ends with one line "N passed, N failed" and fails when anything failed
           or nothing ran.
    Demo   Build, then runs examples/hello as a cluster, reloads it and removes it again.
    Clean  removes out/ and every bin/ and obj/ folder.
    Docs   turns docs/en-US into the module's help (PlatyPS where installed, else tools/New-ClusterHelp.ps1).
    Bench  Build, then Cluster and PM2 7.0.4 side by side (bench/Invoke-Benchmark.ps1, report in docs/benchmarks.md).
    Soak   Build, then 100 reloads under load: no failed request, flat host memory, nothing left running.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 -Task Test
.EXAMPLE
    dotnet pwsh ./build.ps1 -Task Bench -BenchOnly PrimaryLoss
#>
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Package', 'Test', 'Demo', 'Docs', 'Bench', 'Soak', 'Clean')]
    [string[]] $Task = 'Build',

    [string] $Configuration = 'Release',

    # With -Task Bench: only these measures of bench/Invoke-Benchmark.ps1 (its -Only), and no report written.
    [string[]] $BenchOnly = @()
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$RepoRoot = $PSScriptRoot
$OutRoot = Join-Path $RepoRoot 'out'
$ModuleOut = Join-Path $OutRoot 'Cluster'
$TestResults = Join-Path $OutRoot 'test-results'

# pwsh colours its output even into a pipe; keep logs and CI output plain.
if ([Console]::IsOutputRedirected) {
    $env:NO_COLOR = '1'
    $PSStyle.OutputRendering = 'PlainText'
}

# The netstandard2.0 dependencies of System.Text.Json. PowerShell 7 already has them; Windows PowerShell 5.1
# needs them, loaded from Dependencies/ by the module's assembly resolver.
$DependencyAssemblies = @(
    'System.Text.Json.dll'
    'Microsoft.Bcl.AsyncInterfaces.dll'
    'System.Buffers.dll'
    'System.Memory.dll'
    'System.Numerics.Vectors.dll'
    'System.Runtime.CompilerServices.Unsafe.dll'
    'System.Text.Encodings.Web.dll'
    'System.Threading.Tasks.Extensions.dll'
)

# What a framework-dependent host needs next to it (used only when Native AOT publishing is not possible).
$FrameworkDependentHostFiles = @(
    'cluster-host.dll'
    'cluster-host.runtimeconfig.json'
    'cluster-host.deps.json'
    'Serilog.dll'
    'Serilog.Sinks.File.dll'
)

# The platforms the package carries a host for, as runtime identifiers; the module keeps each in hosts/<rid>/.
# The launcher (src/Cluster/Client/HostBinary.cs) picks one by OS, architecture and C library.
$PackageRuntimes = @('win-x64', 'linux-x64', 'linux-arm64', 'linux-musl-x64', 'osx-x64', 'osx-arm64')

# Platforms that run another platform's host under the OS's own x64 emulation: Windows 11 on Arm runs x64 programs,
# and the win-arm64 runtime pack is not served by the NuGet sources this project builds from. The launcher falls
# back to the x64 host there by itself; hosts/hosts.json says so for each of them.
$EmulatedRuntimes = [ordered]@{ 'win-arm64' = 'win-x64' }

# The folder of a framework-dependent host (needs the .NET runtime), made only when Native AOT is not possible.
$PortableHostFolder = 'portable'

# Files shipped as-is from module/ (the Node primary, the drain preload, format and type data).
$ModuleFilePatterns = @('*.js', '*.ps1xml')

#region Helpers

function Invoke-Native {
    param([string] $File, [string[]] $Arguments)

    Write-Verbose "$File $($Arguments -join ' ')"
    & $File @Arguments | Out-Host
    if ($LASTEXITCODE) {
        throw "'$File $($Arguments -join ' ')' failed with exit code $LASTEXITCODE."
    }
}

function Write-Step([string] $Message) {
    Write-Host "==> $Message"
}

function Get-ProjectVersion {
    [xml] $props = Get-Content -Raw (Join-Path $RepoRoot 'Directory.Build.props')
    $node = $props.SelectSingleNode('/Project/PropertyGroup/Version')
    if ($null -eq $node -or $node.InnerText -notmatch '^\d+\.\d+\.\d+$') {
        throw 'Directory.Build.props must hold <Version> as major.minor.patch (a module version has no prerelease label here).'
    }
    $node.InnerText
}

# The runtime identifier to publish the host for, or $null when this platform has no known one.
function Get-HostRuntimeIdentifier {
    $os = if ($IsLinux) { 'linux' } elseif ($IsMacOS) { 'osx' } elseif ($IsWindows) { 'win' } else { return $null }
    $arch = switch ([System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture) {
        'X64' { 'x64' }
        'Arm64' { 'arm64' }
        default { return $null }
    }
    if ($os -eq 'linux' -and [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier -like '*musl*') {
        $os = 'linux-musl'
    }
    "$os-$arch"
}

# The command line that starts a fresh pwsh. Under 'dotnet pwsh' the process is dotnet itself, so the
# child is started as 'dotnet <PSHOME>/pwsh.dll'.
function Get-PwshCommand {
    $path = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($path) -eq 'pwsh') {
        return @{ File = $path; Prefix = @() }
    }
    @{ File = $path; Prefix = @(Join-Path $PSHOME 'pwsh.dll') }
}

function Invoke-FreshPwsh {
    param([string] $ScriptPath, [string[]] $Arguments = @())

    $pwsh = Get-PwshCommand
    Invoke-Native $pwsh.File (@($pwsh.Prefix) + @('-NoProfile', '-NonInteractive', '-File', $ScriptPath) + $Arguments)
}

# Runs $Script with HOME (and the XDG folders under it) in a new folder at $Path, off Windows: PSResourceGet keeps its
# repository list and its CurrentUser installs there, so the user's own are never read or changed.
function Use-TemporaryHome {
    param([string] $Path, [scriptblock] $Script)

    if ($IsWindows) { & $Script; return }
    $names = 'HOME', 'XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME'
    $previous = @{}
    foreach ($name in $names) { $previous[$name] = [Environment]::GetEnvironmentVariable($name) }
    $null = New-Item -ItemType Directory -Path $Path -Force
    try {
        $env:HOME = $Path
        $env:XDG_DATA_HOME = Join-Path $Path '.local/share'
        $env:XDG_CONFIG_HOME = Join-Path $Path '.config'
        $env:XDG_CACHE_HOME = Join-Path $Path '.cache'
        & $Script
    }
    finally {
        foreach ($name in $names) { [Environment]::SetEnvironmentVariable($name, $previous[$name]) }
    }
}

function Get-NuGetPackagesFolder {
    $line = & dotnet nuget locals global-packages --list
    if ($LASTEXITCODE) { throw "'dotnet nuget locals global-packages --list' failed with exit code $LASTEXITCODE." }
    # "global-packages: /home/me/.nuget/packages/"
    ($line | Select-String -Pattern '^global-packages:\s*(.+)$' | Select-Object -First 1).Matches[0].Groups[1].Value.Trim()
}

#endregion

#region Tasks

function Invoke-BuildTask {
    $version = Get-ProjectVersion

    Write-Step "Building src/Cluster ($Configuration, version $version)"
    Invoke-Native dotnet @('build', (Join-Path $RepoRoot 'src/Cluster'), '-c', $Configuration, '-nologo')

    # The module is assembled in a staging folder and swapped in at the end, so that out/Cluster is either the
    # previous build or a complete new one, never half of one.
    $id = [guid]::NewGuid().ToString('n')
    $hostPublish = Join-Path ([IO.Path]::GetTempPath()) "cluster-host-publish-$id"
    $staging = Join-Path $OutRoot "Cluster.staging-$id"
    try {
        $hostIsNative = Publish-ClusterHost -OutputPath $hostPublish

        Write-Step "Assembling $ModuleOut"
        New-ModuleFolder -Path $staging -Version $version -HostPublish $hostPublish -HostIsNative $hostIsNative
        Build-ClusterHelp -ModuleFolder $staging
        Assert-ModuleFiles -ModuleFolder $staging

        if (Test-Path $ModuleOut) { Remove-Item $ModuleOut -Recurse -Force }
        Move-Item $staging $ModuleOut
    }
    finally {
        foreach ($folder in $hostPublish, $staging) {
            if (Test-Path $folder) { Remove-Item $folder -Recurse -Force }
        }
    }
    Write-Step "Built $ModuleOut"
}

# Lays out the module from a named list of files: nothing reaches it by a wholesale copy.
function New-ModuleFolder {
    param([string] $Path, [string] $Version, [string] $HostPublish, [bool] $HostIsNative)

    $cmdletOutput = Join-Path $RepoRoot "src/Cluster/bin/$Configuration/netstandard2.0"
    $dependencies = Join-Path $Path 'Dependencies'
    $null = New-Item -ItemType Directory -Path $Path, $dependencies

    $manifest = (Get-Content -Raw (Join-Path $RepoRoot 'Cluster.psd1')) -replace "ModuleVersion(\s*)=(\s*)'0\.0\.0'", "ModuleVersion`$1=`$2'$Version'"
    if ($manifest -notmatch "ModuleVersion\s*=\s*'$([regex]::Escape($Version))'") {
        throw "Could not stamp the version into Cluster.psd1: keep its placeholder line ModuleVersion = '0.0.0'."
    }
    Set-Content -Path (Join-Path $Path 'Cluster.psd1') -Value $manifest -NoNewline -Encoding utf8BOM

    Copy-Item (Join-Path $cmdletOutput 'Cluster.dll') $Path
    if (Test-Path (Join-Path $cmdletOutput 'Cluster.pdb')) { Copy-Item (Join-Path $cmdletOutput 'Cluster.pdb') $Path }

    foreach ($name in $DependencyAssemblies) {
        $file = Join-Path $cmdletOutput $name
        if (Test-Path $file) { Copy-Item $file $dependencies }
    }

    if ($HostIsNative) {
        Copy-HostExecutable -From $HostPublish -Rid (Get-HostRuntimeIdentifier) -ModuleFolder $Path
    }
    else {
        $hostFolder = New-Item -ItemType Directory -Path (Join-Path $Path "hosts/$PortableHostFolder")
        foreach ($name in $FrameworkDependentHostFiles) {
            Copy-Item (Join-Path $HostPublish $name) $hostFolder
        }
    }

    foreach ($pattern in $ModuleFilePatterns) {
        Get-ChildItem -Path (Join-Path $RepoRoot 'module') -Filter $pattern -File | Copy-Item -Destination $Path
    }
    Copy-Item (Join-Path $RepoRoot 'LICENSE') $Path
}

# Publishes the host into $OutputPath: Native AOT when a runtime identifier is known and a native toolchain is
# there, framework-dependent otherwise. Returns $true for a native executable.
function Publish-ClusterHost {
    param([string] $OutputPath)

    $project = Join-Path $RepoRoot 'src/Cluster.Host'
    $rid = Get-HostRuntimeIdentifier
    if ($rid) {
        Write-Step "Publishing the host (Native AOT, $rid)"
        try {
            Invoke-Native dotnet @('publish', $project, '-c', $Configuration, '-r', $rid, '-p:ClusterAot=true', '-o', $OutputPath, '-nologo')
            return $true
        }
        catch {
            Write-Warning "Native AOT publishing of the host failed ($($_.Exception.Message)); is a native toolchain (clang/gcc, or the Visual Studio C++ workload on Windows) installed? Falling back to a framework-dependent host, which needs the .NET runtime to run."
            if (Test-Path $OutputPath) { Remove-Item $OutputPath -Recurse -Force }
        }
    }
    else {
        Write-Warning 'Could not determine a runtime identifier for Native AOT on this platform; publishing a framework-dependent host, which needs the .NET runtime to run.'
    }

    Write-Step 'Publishing the host (framework-dependent)'
    Invoke-Native dotnet @('publish', $project, '-c', $Configuration, '-o', $OutputPath, '-nologo')
    $false
}

function Get-HostExecutableName([string] $Rid) {
    if ($Rid -like 'win-*') { 'cluster-host.exe' } else { 'cluster-host' }
}

# Copies a published host executable into the module's hosts/<rid>/ folder, executable where that means a mode bit.
function Copy-HostExecutable {
    param([string] $From, [string] $Rid, [string] $ModuleFolder)

    $exe = Get-HostExecutableName $Rid
    $folder = Join-Path $ModuleFolder "hosts/$Rid"
    $null = New-Item -ItemType Directory -Path $folder -Force
    Copy-Item (Join-Path $From $exe) $folder
    if (-not $IsWindows) { Invoke-Native chmod @('755', (Join-Path $folder $exe)) }
}

# What a cross-platform host is built from: its sources, the shared contracts, the build settings, the SDK and
# the publish command. A host in the cache is reused only while all of these are unchanged.
function Get-HostInputHash {
    param([string[]] $PublishArguments)

    $files = @(
        Get-ChildItem -Path (Join-Path $RepoRoot 'src/Cluster.Host'), (Join-Path $RepoRoot 'src/Shared') -Recurse -File |
            Where-Object { $_.FullName -notmatch '[\\/](bin|obj)[\\/]' }
        Get-Item (Join-Path $RepoRoot 'Directory.Build.props'), (Join-Path $RepoRoot 'global.json')
    ) | Sort-Object { [IO.Path]::GetRelativePath($RepoRoot, $_.FullName).Replace('\', '/') } -Culture ([cultureinfo]::InvariantCulture)

    $sdk = & dotnet --version
    if ($LASTEXITCODE) { throw "'dotnet --version' failed with exit code $LASTEXITCODE." }

    $sha = [System.Security.Cryptography.IncrementalHash]::CreateHash([System.Security.Cryptography.HashAlgorithmName]::SHA256)
    try {
        $text = [Text.Encoding]::UTF8
        $sha.AppendData($text.GetBytes("sdk $sdk`n$($PublishArguments -join ' ')`n"))
        foreach ($file in $files) {
            $sha.AppendData($text.GetBytes([IO.Path]::GetRelativePath($RepoRoot, $file.FullName).Replace('\', '/') + "`n"))
            $sha.AppendData([IO.File]::ReadAllBytes($file.FullName))
        }
        [Convert]::ToHexString($sha.GetHashAndReset()).Substring(0, 16).ToLowerInvariant()
    }
    finally {
        $sha.Dispose()
    }
}

function Get-HostCacheFolder {
    if ($env:CLUSTER_HOST_CACHE) { return $env:CLUSTER_HOST_CACHE }
    $base = if ($IsWindows) { [Environment]::GetFolderPath('LocalApplicationData') }
    elseif ($IsMacOS) { Join-Path $HOME 'Library/Caches' }
    elseif ($env:XDG_CACHE_HOME) { $env:XDG_CACHE_HOME }
    else { Join-Path $HOME '.cache' }
    Join-Path $base 'cluster/hosts'
}

# The folders holding a self-contained, trimmed single-file host for each of $Rids, by runtime identifier: from the
# host cache when built from the same inputs, else published now, two at a time (each publish keeps about one core
# busy), into separate artifacts folders (so the project's own obj/ is left alone) and stored in the cache. A cache
# entry appears by one rename, complete or not at all. Fails, naming the package, when the NuGet sources do not
# serve a platform's runtime pack: a package never leaves a platform out quietly.
function Get-CachedHosts {
    param([string[]] $Rids)

    $project = Join-Path $RepoRoot 'src/Cluster.Host'
    $cache = Get-HostCacheFolder
    $folders = [ordered]@{}
    $publishes = [System.Collections.Generic.List[object]]::new()
    foreach ($rid in $Rids) {
        $settings = @(
            '-c', $Configuration, '-r', $rid, '--self-contained', '-p:PublishSingleFile=true', '-p:PublishTrimmed=true'
            '-p:DebugType=none', '-p:DisableTransitiveFrameworkReferenceDownloads=true'
        )
        $entry = Join-Path $cache "$rid-$(Get-HostInputHash -PublishArguments $settings)"
        $folders[$rid] = $entry
        if (Test-Path (Join-Path $entry (Get-HostExecutableName $rid))) {
            Write-Step "Host for $($rid): reused from $entry"
            continue
        }
        $work = Join-Path ([IO.Path]::GetTempPath()) "cluster-host-$rid-$([guid]::NewGuid().ToString('n'))"
        $publishes.Add([pscustomobject]@{
            Rid       = $rid
            Entry     = $entry
            Work      = $work
            Arguments = @('publish', $project) + $settings + @('--artifacts-path', (Join-Path $work 'artifacts'), '-o', (Join-Path $work 'out'), '-nologo')
        })
    }
    if ($publishes.Count -eq 0) { return $folders }

    Write-Step "Publishing the host for $($publishes.Rid -join ', ') (self-contained, trimmed, single file; two at a time)"
    try {
        $jobs = foreach ($publish in $publishes) {
            Start-ThreadJob -ThrottleLimit 2 -ArgumentList (, $publish.Arguments) -ScriptBlock {
                param([string[]] $Arguments)
                $output = & dotnet @Arguments 2>&1 | ForEach-Object { "$_" }
                [pscustomobject]@{ Output = $output; ExitCode = $LASTEXITCODE }
            }
        }
        $results = @(foreach ($job in $jobs) { Receive-Job -Job $job -Wait -AutoRemoveJob })
        for ($i = 0; $i -lt $publishes.Count; $i++) {
            $publish, $result = $publishes[$i], $results[$i]
            Write-Step "Host for $($publish.Rid): published"
            $result.Output | Out-Host
            if ($result.ExitCode) {
                $missing = @($result.Output | Select-String -Pattern 'error NU1101: Unable to find package (Microsoft\.NETCore\.App\.[\w.-]*[\w-])' | ForEach-Object { $_.Matches[0].Groups[1].Value } | Sort-Object -Unique)
                if ($missing) {
                    throw "No host for $($publish.Rid): the NuGet sources of this machine do not serve $($missing -join ', '). Add a source that does (nuget.config), or run Cluster on $($publish.Rid) under emulation and list it in `$EmulatedRuntimes."
                }
                throw "'dotnet $($publish.Arguments -join ' ')' failed with exit code $($result.ExitCode)."
            }
            Save-CachedHost -Rid $publish.Rid -From (Join-Path $publish.Work 'out') -Entry $publish.Entry
        }
    }
    finally {
        foreach ($publish in $publishes) {
            if (Test-Path $publish.Work) { Remove-Item $publish.Work -Recurse -Force }
        }
    }
    $folders
}

# Stores a published host as the cache entry $Entry, by one rename; entries of the same platform built from older
# inputs go once they have not been written to for two weeks.
function Save-CachedHost {
    param([string] $Rid, [string] $From, [string] $Entry)

    $exe = Get-HostExecutableName $Rid
    $cache = Split-Path $Entry
    $staged = Join-Path $cache ".staging-$Rid-$([guid]::NewGuid().ToString('n'))"
    $null = New-Item -ItemType Directory -Path $staged -Force
    Copy-Item (Join-Path $From $exe) $staged
    try {
        Move-Item $staged $Entry -ErrorAction Stop
    }
    catch {
        # Another build stored the same entry meanwhile: it is the same host.
        Remove-Item $staged -Recurse -Force
        if (-not (Test-Path (Join-Path $Entry $exe))) { throw }
    }
    Get-ChildItem -Path $cache -Directory -Filter "$Rid-*" |
        Where-Object { $_.FullName -ne $Entry -and $_.LastWriteTimeUtc -lt [DateTime]::UtcNow.AddDays(-14) } |
        Remove-Item -Recurse -Force -ErrorAction Continue
}

# out/Cluster.<version>.nupkg: the built module with a host for every platform, published with PSResourceGet to a
# local repository. The repository is registered in a fresh pwsh whose PSResourceGet settings live in a temporary
# folder (off Windows), so the user's own repositories are never touched.
function Invoke-PackageTask {
    $version = Get-ProjectVersion
    $id = [guid]::NewGuid().ToString('n')
    $staging = Join-Path $OutRoot "package-$id/Cluster"
    $settings = Join-Path ([IO.Path]::GetTempPath()) "cluster-psresourceget-$id"
    $package = Join-Path $OutRoot "Cluster.$version.nupkg"
    try {
        Write-Step "Assembling the package contents in $staging"
        $null = New-Item -ItemType Directory -Path (Split-Path $staging)
        Copy-Item $ModuleOut $staging -Recurse
        $portable = Join-Path $staging "hosts/$PortableHostFolder"
        if (Test-Path $portable) { Remove-Item $portable -Recurse -Force }
        $hosts = [ordered]@{}
        $native = @($PackageRuntimes | Where-Object { Test-Path (Join-Path $staging "hosts/$_/$(Get-HostExecutableName $_)") })
        $cached = Get-CachedHosts -Rids @($PackageRuntimes | Where-Object { $_ -notin $native })
        foreach ($rid in $PackageRuntimes) {
            if ($rid -in $native) {
                Write-Step "Host for $($rid): Native AOT, from the build"
                $hosts[$rid] = [ordered]@{ build = 'NativeAot' }
                continue
            }
            Copy-HostExecutable -From $cached[$rid] -Rid $rid -ModuleFolder $staging
            $hosts[$rid] = [ordered]@{ build = 'SingleFile' }
        }
        foreach ($rid in $EmulatedRuntimes.Keys) {
            $runs = $EmulatedRuntimes[$rid]
            $hosts[$rid] = [ordered]@{ build = 'Emulated'; runs = $runs; reason = "$rid runs the $runs host under the OS's x64 emulation" }
        }
        $extra = Get-ChildItem (Join-Path $staging 'hosts') -Directory | Where-Object Name -NotIn $PackageRuntimes
        if ($extra) { $extra | Remove-Item -Recurse -Force }
        # What the package carries for each platform, and how it was built: read by the package tests and by people.
        $hosts | ConvertTo-Json | Set-Content -Path (Join-Path $staging 'hosts/hosts.json') -Encoding utf8NoBOM

        Write-Step "Publishing $package"
        if (Test-Path $package) { Remove-Item $package -Force }
        Use-TemporaryHome -Path $settings {
            Invoke-FreshPwsh (Join-Path $RepoRoot 'tools/Publish-ClusterPackage.ps1') @('-ModuleFolder', $staging, '-OutputPath', $package)
        }
    }
    finally {
        foreach ($folder in (Split-Path $staging), $settings) {
            if (Test-Path $folder) { Remove-Item $folder -Recurse -Force }
        }
    }

    $size = (Get-Item $package).Length
    $emulated = @($EmulatedRuntimes.Keys | ForEach-Object { "$_ (runs $($EmulatedRuntimes[$_]))" })
    Write-Step ("Packaged {0} ({1:N1} MB, hosts for {2}; emulated: {3})" -f $package, ($size / 1MB), ($PackageRuntimes -join ', '), ($emulated -join ', '))
}

# docs/en-US/*.md (PlatyPS markdown) -> en-US/Cluster.dll-Help.xml and about_Cluster.help.txt: with PlatyPS
# where it is installed, otherwise with tools/New-ClusterHelp.ps1, which reads the same markdown.
function Build-ClusterHelp {
    param([string] $ModuleFolder)

    $source = Join-Path $RepoRoot 'docs/en-US'
    $target = Join-Path $ModuleFolder 'en-US'
    if (Get-Module -ListAvailable -Name platyPS) {
        Write-Step 'Generating help with PlatyPS'
        Import-Module platyPS
        New-ExternalHelp -Path $source -OutputPath $target -Force | Out-Null
        return
    }

    Write-Step 'Generating help'
    & (Join-Path $RepoRoot 'tools/New-ClusterHelp.ps1') -DocsPath $source -OutputPath $target
}

# Every file the manifest names must be in the built module, and nothing that PowerShell itself provides.
function Assert-ModuleFiles {
    param([string] $ModuleFolder)

    $data = Import-PowerShellDataFile (Join-Path $ModuleFolder 'Cluster.psd1')
    $missing = @($data.RootModule) + @($data.FormatsToProcess) + @($data.TypesToProcess) |
        Where-Object { -not (Test-Path (Join-Path $ModuleFolder $_)) }
    if ($missing) {
        throw "The built module lacks files its manifest names: $($missing -join ', ') (expected in src/Cluster output or module/)."
    }
    if (Get-ChildItem -Path $ModuleFolder -Recurse -Filter 'System.Management.Automation.dll') {
        throw 'System.Management.Automation.dll must not be shipped in the module.'
    }
    if (-not (Get-ChildItem -Path (Join-Path $ModuleFolder 'hosts') -File -Recurse -ErrorAction SilentlyContinue)) {
        throw 'The built module has no host.'
    }
}

function Invoke-TestTask {
    if (Test-Path $TestResults) { Remove-Item $TestResults -Recurse -Force }
    $null = New-Item -ItemType Directory -Path $TestResults

    $runs = [ordered]@{ xunit = Invoke-XunitSuite; pester = Invoke-PesterSuite }

    # A runner that broke without reporting a failed test (a build error, a crash) counts as one failure,
    # so that "0 failed" always means success.
    foreach ($run in $runs.Values) {
        if ($run.Problem -and $run.Failed -eq 0) { $run.Failed = 1 }
    }
    $passed = ($runs.Values | Measure-Object -Property Passed -Sum).Sum
    $failed = ($runs.Values | Measure-Object -Property Failed -Sum).Sum

    foreach ($name in $runs.Keys) {
        $run = $runs[$name]
        $note = if ($run.Problem) { " ($($run.Problem))" } else { '' }
        Write-Host "${name}: $($run.Passed) passed, $($run.Failed) failed$note"
    }
    if ($passed + $failed -eq 0) {
        Write-Host 'No tests ran.'
    }
    Write-Host "$passed passed, $failed failed"

    if ($failed -gt 0 -or $passed -eq 0) {
        exit 1
    }
}

# Runs the xunit suite. A failure here is recorded, not thrown, so that Pester still runs.
function Invoke-XunitSuite {
    $project = Join-Path $RepoRoot 'tests/Cluster.Tests'
    $result = [pscustomobject]@{ Passed = 0; Failed = 0; Problem = $null }

    Write-Step 'Restoring tests/Cluster.Tests (also fetches Pester)'
    Invoke-Native dotnet @('restore', $project)

    Write-Step 'Running the xunit suite'
    & dotnet test $project -c $Configuration --no-restore --nologo `
        --logger 'trx;LogFileName=xunit.trx' --results-directory $TestResults | Out-Host
    $exitCode = $LASTEXITCODE

    $trx = Join-Path $TestResults 'xunit.trx'
    if (Test-Path $trx) {
        [xml] $run = Get-Content -Raw $trx
        $counters = $run.TestRun.ResultSummary.Counters
        $result.Passed = [int] $counters.passed
        $result.Failed = [int] $counters.failed + [int] $counters.error + [int] $counters.timeout + [int] $counters.aborted
    }
    elseif (-not $exitCode) {
        $result.Problem = 'no result file'
    }
    if ($exitCode -and $result.Failed -eq 0) {
        $result.Problem = "dotnet test exited with code $exitCode"
    }
    $result
}

# Runs tests/pester in a fresh pwsh against the built module; reads the counts back from a JSON summary.
function Invoke-PesterSuite {
    $result = [pscustomobject]@{ Passed = 0; Failed = 0; Problem = $null }
    $pesterManifest = Join-Path (Get-NuGetPackagesFolder) 'pester/5.7.1/tools/Pester.psd1'
    if (-not (Test-Path $pesterManifest)) {
        throw "Pester 5.7.1 is not at $pesterManifest; restoring tests/Cluster.Tests should have fetched it."
    }
    $summary = Join-Path $TestResults 'pester-summary.json'

    Write-Step 'Running the Pester suite'
    $previous = $env:CLUSTER_MODULE_PATH, $env:CLUSTER_PACKAGE_PATH
    $env:CLUSTER_MODULE_PATH = Join-Path $ModuleOut 'Cluster.psd1'
    $env:CLUSTER_PACKAGE_PATH = Join-Path $OutRoot "Cluster.$(Get-ProjectVersion).nupkg"
    try {
        Invoke-FreshPwsh (Join-Path $RepoRoot 'tools/Invoke-PesterSuite.ps1') @(
            '-PesterPath', $pesterManifest
            '-TestPath', (Join-Path $RepoRoot 'tests/pester')
            '-ResultPath', (Join-Path $TestResults 'pester.xml')
            '-SummaryPath', $summary
        )
    }
    catch {
        $result.Problem = "the Pester run failed: $($_.Exception.Message)"
    }
    finally {
        $env:CLUSTER_MODULE_PATH, $env:CLUSTER_PACKAGE_PATH = $previous
    }

    if (Test-Path $summary) {
        $counts = Get-Content -Raw $summary | ConvertFrom-Json
        $result.Passed = [int] $counts.Passed
        $result.Failed = [int] $counts.Failed
        if ($counts.Note) { $result.Problem = $counts.Note }
    }
    elseif (-not $result.Problem) {
        $result.Problem = 'no summary was written'
    }
    $result
}

function Invoke-DemoTask {
    $port = Get-FreeTcpPort
    $clusterHome = Join-Path ([IO.Path]::GetTempPath()) "cluster-demo-$([guid]::NewGuid().ToString('n').Substring(0, 8))"

    Write-Step "Running the demo on http://127.0.0.1:$port/ (CLUSTER_HOME $clusterHome)"
    try {
        Invoke-FreshPwsh (Join-Path $RepoRoot 'examples/hello/demo.ps1') @(
            '-ModulePath', (Join-Path $ModuleOut 'Cluster.psd1')
            '-ClusterHome', $clusterHome
            '-Port', $port
        )
    }
    finally {
        Stop-LeftoverHost -ClusterHome $clusterHome
        if (Test-Path $clusterHome) { Remove-Item $clusterHome -Recurse -Force -ErrorAction Continue }
    }
}

# The demo stops its host itself; should that have failed, the host of the demo's CLUSTER_HOME (its pid is in
# host.lock) must not outlive the demo.
function Stop-LeftoverHost {
    param([string] $ClusterHome)

    $lock = Join-Path $ClusterHome 'host.lock'
    $hostPid = if (Test-Path $lock) { (Get-Content -Raw $lock -ErrorAction SilentlyContinue) -as [int] }
    if (-not $hostPid) { return }
    $process = Get-Process -Id $hostPid -ErrorAction SilentlyContinue
    if (-not $process -or $process.ProcessName -notin 'cluster-host', 'dotnet') { return }
    if (-not $process.WaitForExit(5000)) {
        Write-Warning "The demo's Cluster host (pid $hostPid) is still running; stopping it."
        $process.Kill($true)
    }
}

function Get-FreeTcpPort {
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    try {
        $listener.Start()
        $listener.LocalEndpoint.Port
    }
    finally {
        $listener.Stop()
    }
}

function Invoke-CleanTask {
    Write-Step 'Removing out/, bin/ and obj/'
    if (Test-Path $OutRoot) { Remove-Item $OutRoot -Recurse -Force }
    foreach ($project in Get-ChildItem -Path (Join-Path $RepoRoot 'src'), (Join-Path $RepoRoot 'tests') -Directory) {
        foreach ($name in 'bin', 'obj') {
            $folder = Join-Path $project.FullName $name
            if (Test-Path $folder) { Remove-Item $folder -Recurse -Force }
        }
    }
}

function Invoke-DocsTask {
    if (-not (Test-Path (Join-Path $ModuleOut 'Cluster.psd1'))) { Invoke-BuildTask; $script:built = $true; return }
    Build-ClusterHelp -ModuleFolder $ModuleOut
}

function Invoke-BenchTask {
    if (-not $script:built) { Invoke-BuildTask; $script:built = $true }
    $arguments = @('-ModulePath', (Join-Path $ModuleOut 'Cluster.psd1'))
    if ($BenchOnly) { $arguments += @('-Only', ($BenchOnly -join ',')) }
    Invoke-FreshPwsh (Join-Path $RepoRoot 'bench/Invoke-Benchmark.ps1') $arguments
}

function Invoke-SoakTask {
    if (-not $script:built) { Invoke-BuildTask; $script:built = $true }
    Invoke-FreshPwsh (Join-Path $RepoRoot 'bench/Invoke-Soak.ps1') @('-ModulePath', (Join-Path $ModuleOut 'Cluster.psd1'))
}

#endregion

$built = $false
$packaged = $false
foreach ($name in $Task) {
    if ($name -in 'Package', 'Test', 'Demo' -and -not $built) {
        Invoke-BuildTask
        $built = $true
    }
    if ($name -eq 'Test' -and -not $packaged) {
        Invoke-PackageTask
        $packaged = $true
    }
    switch ($name) {
        'Build' { if (-not $built) { Invoke-BuildTask; $built = $true } }
        'Package' { if (-not $packaged) { Invoke-PackageTask; $packaged = $true } }
        'Test' { Invoke-TestTask }
        'Demo' { Invoke-DemoTask }
        'Docs' { Invoke-DocsTask }
        'Bench' { Invoke-BenchTask }
        'Soak' { Invoke-SoakTask }
        'Clean' { Invoke-CleanTask; $built = $false; $packaged = $false }
    }
}
