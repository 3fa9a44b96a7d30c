#Requires -Version 7.2
<#
.SYNOPSIS
    Builds, tests and demonstrates the Cluster module.
.DESCRIPTION
    Build  compiles the cmdlets, publishes the host (Native AOT where possible) and assembles out/Cluster
           from a named list of files.
    Test   Build, then the xunit suite and the Pester suite (against the built module, in a fresh pwsh);
           ends with one line "N passed, N failed" and fails when anything failed or nothing ran.
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
    [ValidateSet('Build', 'Test', 'Demo', 'Docs', 'Bench', 'Soak', 'Clean')]
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
    $hostFolder = Join-Path $Path 'host'
    $null = New-Item -ItemType Directory -Path $Path, $dependencies, $hostFolder

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
        $exe = if ($IsWindows) { 'cluster-host.exe' } else { 'cluster-host' }
        Copy-Item (Join-Path $HostPublish $exe) $hostFolder
        if (-not $IsWindows) { Invoke-Native chmod @('+x', (Join-Path $hostFolder $exe)) }
    }
    else {
        foreach ($name in $FrameworkDependentHostFiles) {
            Copy-Item (Join-Path $HostPublish $name) $hostFolder
        }
    }

    foreach ($pattern in $ModuleFilePatterns) {
        Get-ChildItem -Path (Join-Path $RepoRoot 'module') -Filter $pattern -File | Copy-Item -Destination $Path
    }
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
    if (-not (Get-ChildItem -Path (Join-Path $ModuleFolder 'host') -File)) {
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
    $previous = $env:CLUSTER_MODULE_PATH
    $env:CLUSTER_MODULE_PATH = Join-Path $ModuleOut 'Cluster.psd1'
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
        $env:CLUSTER_MODULE_PATH = $previous
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
foreach ($name in $Task) {
    if ($name -in 'Test', 'Demo' -and -not $built) {
        Invoke-BuildTask
        $built = $true
    }
    switch ($name) {
        'Build' { if (-not $built) { Invoke-BuildTask; $built = $true } }
        'Test' { Invoke-TestTask }
        'Demo' { Invoke-DemoTask }
        'Docs' { Invoke-DocsTask }
        'Bench' { Invoke-BenchTask }
        'Soak' { Invoke-SoakTask }
        'Clean' { Invoke-CleanTask; $built = $false }
    }
}
