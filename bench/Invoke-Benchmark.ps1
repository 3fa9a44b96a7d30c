#Requires -Version 7.0
<#
.SYNOPSIS
    Runs Cluster and PM2 side by side on this machine and writes the comparison to docs/benchmarks.md.
.DESCRIPTION
    The same app (bench/app.js, 2 instances, 127.0.0.1) runs under both tools. Measures, each on both:
      - failed requests (wrk socket errors + HTTP errors) during reloads under wrk -t1 -c16, keep-alive and
        'Connection: close';
      - lost WebSocket messages and HTTP/2 streams, and reload wall time, during reloads under a WebSocket and an
        HTTP/2 client (tests/fixtures/drain: an app that never closes a connection itself, and its client);
      - reload wall time with 2 instances (median);
      - cold start: nothing running -> start 2 instances -> first HTTP 200 (median);
      - control round trip: Get-ClusterApp in this open session vs 'pm2 jlist' as a process (medians);
      - throughput under wrk -t1 -c16, keep-alive and a new connection per request, with Cluster's
        RoundRobin and Shared scheduling, and how requests spread across instances;
      - memory: the Cluster host plus its Node primaries vs PM2's God daemon, with 1 and with 5 apps;
      - log tail (Cluster only): Get-ClusterAppLog -Tail 1000 / 10000 / 100000 of a 60 MB log, and the host's RSS
        before, at its peak and after;
      - primary loss: SIGKILL of Cluster's Node primary / PM2's God daemon under a paced load (bench/primary-loss.js)
        -> the first 200 again (bounded at -PrimaryLossBoundSeconds), and the requests that failed meanwhile.
    -Only runs the named measures alone (and writes no report, which would be partial).
    Installs PM2 (into bench/.work/pm2, PM2_HOME bench/.work/pm2-home) and wrk (Debian package) when missing.
    Every process it starts is stopped before it returns. build.ps1 -Task Bench builds the module and runs this.
.EXAMPLE
    ./bench/Invoke-Benchmark.ps1 -ModulePath ./out/Cluster/Cluster.psd1
.EXAMPLE
    ./bench/Invoke-Benchmark.ps1 -ModulePath ./out/Cluster/Cluster.psd1 -Only LogTail
.EXAMPLE
    ./bench/Invoke-Benchmark.ps1 -ModulePath ./out/Cluster/Cluster.psd1 -Only PrimaryLoss
#>
[CmdletBinding()]
param(
    # The built module to measure (out/Cluster/Cluster.psd1).
    [Parameter(Mandatory)] [string] $ModulePath,

    # Where the report goes; nothing is written when empty.
    [string] $ReportPath = (Join-Path $PSScriptRoot '../docs/benchmarks.md'),

    [string] $Pm2Version = '7.0.4',

    # Reloads per run under load.
    [ValidateRange(1, 100)] [int] $Reloads = 10,

    # Seconds of throughput load per tool and scheduling policy, given in $LoadRounds interleaved wrk runs.
    [ValidateRange(1, 60)] [int] $LoadSeconds = 10,

    [ValidateRange(1, 10)] [int] $LoadRounds = 5,

    [ValidateRange(1, 20)] [int] $ColdStarts = 3,

    [ValidateRange(1, 20)] [int] $ReloadSamples = 5,

    # Reloads per tool under the WebSocket and the HTTP/2 client.
    [ValidateRange(1, 50)] [int] $LongLivedReloads = 5,

    [ValidateRange(5, 500)] [int] $ControlSamples = 50,

    [ValidateRange(3, 100)] [int] $JlistSamples = 20,

    # Runs only these measures, prints them, and writes no report. All of them when left out. A name may also be
    # a comma-separated list (what build.ps1 -BenchOnly passes through pwsh -File).
    [ArgumentCompleter({ 'ColdStart', 'Memory1', 'Control', 'ThroughputKeepAlive', 'ThroughputClose', 'ReloadTime',
            'ReloadPm2KeepAlive', 'ReloadClusterKeepAlive', 'ReloadPm2Close', 'ReloadClusterClose', 'Memory5', 'LogTail',
            'ReloadWebSocket', 'ReloadHttp2', 'PrimaryLoss' })]
    [string[]] $Only = @(),

    [ValidateRange(1, 20)] [int] $LogTailSamples = 3,

    # SIGKILLs of Cluster's Node primary; PM2's daemon is killed at most 3 times (it never comes back).
    [ValidateRange(1, 20)] [int] $PrimaryLossSamples = 5,

    # How long a kill waits for the app to answer again before it counts as not back.
    [ValidateRange(2, 60)] [int] $PrimaryLossBoundSeconds = 10
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$ProgressPreference = 'SilentlyContinue'

$MeasureNames = @('ColdStart', 'Memory1', 'Control', 'ThroughputKeepAlive', 'ThroughputClose', 'ReloadTime',
    'ReloadPm2KeepAlive', 'ReloadClusterKeepAlive', 'ReloadPm2Close', 'ReloadClusterClose', 'Memory5', 'LogTail',
    'ReloadWebSocket', 'ReloadHttp2', 'PrimaryLoss')
$Only = @($Only | ForEach-Object { $_ -split ',' } | ForEach-Object Trim | Where-Object { $_ })
$unknown = @($Only | Where-Object { $_ -notin $MeasureNames })
if ($unknown) {
    throw "-Only names measures that do not exist: $($unknown -join ', '). The measures are: $($MeasureNames -join ', ')."
}

$RepoRoot = (Resolve-Path (Join-Path $PSScriptRoot '..')).Path
$WorkRoot = Join-Path $PSScriptRoot '.work'
$AppScript = Join-Path $PSScriptRoot 'app.js'
$PrimaryLossScript = Join-Path $PSScriptRoot 'primary-loss.js'
$WrkScript = Join-Path $PSScriptRoot 'wrk-summary.lua'
$LongLivedApp = Join-Path $RepoRoot 'tests/fixtures/drain/app.js'
$LongLivedClient = Join-Path $RepoRoot 'tests/fixtures/drain/client.js'
$Pm2Prefix = Join-Path $WorkRoot 'pm2'
$Pm2Cli = Join-Path $Pm2Prefix 'node_modules/pm2/bin/pm2'
$Pm2Home = Join-Path $WorkRoot 'pm2-home'
$StatsRoot = Join-Path $WorkRoot 'stats'
$LogRoot = Join-Path $WorkRoot 'logs'
$AppName = 'bench'
$SharedAppName = 'bench-shared'
$InstanceCount = 2
$MemoryAppCount = 5
$MiB = 1MB
$LogTailBytes = 60MB
$LogTailCounts = @(1000, 10000, 100000)

# What the run started, so the finally block can stop all of it.
$script:ClusterHomes = [System.Collections.Generic.List[string]]::new()
$script:WrkRuns = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()
$script:Pm2Used = $false

#region Helpers

$script:RunClock = [System.Diagnostics.Stopwatch]::StartNew()

function Write-Step([string] $Message) {
    Write-Host ("==> [{0,3:N0} s] {1}" -f $script:RunClock.Elapsed.TotalSeconds, $Message)
}

# True when any of the named measures is to run (every measure runs when -Only is not given).
function Test-Selected([string[]] $Names) {
    $Only.Count -eq 0 -or @($Names | Where-Object { $Only -contains $_ }).Count -gt 0
}

function Invoke-Checked {
    param([string] $File, [string[]] $Arguments)
    $output = & $File @Arguments 2>&1
    if ($LASTEXITCODE) {
        throw "'$File $($Arguments -join ' ')' failed with exit code ${LASTEXITCODE}: $($output -join [Environment]::NewLine)"
    }
    $output
}

function Get-Median([double[]] $Values) {
    $sorted = @($Values | Sort-Object)
    if ($sorted.Count -eq 0) { return [double]::NaN }
    $middle = [int][math]::Floor($sorted.Count / 2)
    if ($sorted.Count % 2) { return $sorted[$middle] }
    ($sorted[$middle - 1] + $sorted[$middle]) / 2
}

function Get-FreePort {
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    try {
        $listener.Start()
        $listener.LocalEndpoint.Port
    }
    finally {
        $listener.Stop()
    }
}

# True while the process runs; an exited process that its parent has not reaped yet (a zombie) is not running.
function Test-ProcessRunning([int] $ProcessId) {
    if (-not (Get-Process -Id $ProcessId -ErrorAction SilentlyContinue)) { return $false }
    $stat = "/proc/$ProcessId/stat"
    if (-not (Test-Path $stat)) { return $true }
    $text = Get-Content -Raw $stat -ErrorAction SilentlyContinue
    # pid (comm) state ...: the state follows the last ')'.
    -not ($text -and $text.Substring($text.LastIndexOf(')') + 2, 1) -eq 'Z')
}

function Wait-ProcessExit([int] $ProcessId, [int] $TimeoutMilliseconds = 5000) {
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    while ((Test-ProcessRunning $ProcessId) -and $clock.ElapsedMilliseconds -lt $TimeoutMilliseconds) {
        Start-Sleep -Milliseconds 50
    }
    -not (Test-ProcessRunning $ProcessId)
}

function Get-Rss([int] $ProcessId) {
    $process = Get-Process -Id $ProcessId -ErrorAction SilentlyContinue
    if (-not $process) { throw "Process $ProcessId is not running, so its memory cannot be read." }
    $process.Refresh()
    $process.WorkingSet64
}

function Get-ParentId([int] $ProcessId) {
    $process = Get-Process -Id $ProcessId -ErrorAction SilentlyContinue
    if (-not $process -or -not $process.Parent) { throw "Cannot find the parent of process $ProcessId." }
    $process.Parent.Id
}

function New-StatsFolder([string] $Name) {
    $path = Join-Path $StatsRoot $Name
    if (Test-Path $path) { Remove-Item $path -Recurse -Force }
    (New-Item -ItemType Directory -Path $path).FullName
}

# pid -> requests answered so far, as the app's processes last wrote them.
function Get-RequestCounts([string] $Folder) {
    $counts = @{}
    foreach ($file in Get-ChildItem -Path $Folder -File) {
        $text = Get-Content -Raw -Path $file.FullName -ErrorAction SilentlyContinue
        if ($text -match '^\d+$') { $counts[[int]$file.Name] = [long]$text }
    }
    $counts
}

Add-Type -TypeDefinition @'
using System;
using System.Diagnostics;
using System.Net;
using System.Net.Http;
using System.Threading.Tasks;

public static class BenchProbe
{
    // Asks url over a fresh connection every few milliseconds; returns the clock's reading at the first 200,
    // or -1 once timeoutMs has passed on the clock.
    public static Task<double> FirstOkAsync(string url, Stopwatch clock, int timeoutMs)
    {
        return Task.Run(async () =>
        {
            var handler = new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.Zero };
            using (var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(2) })
            {
                while (clock.ElapsedMilliseconds < timeoutMs)
                {
                    try
                    {
                        using (var request = new HttpRequestMessage(HttpMethod.Get, url))
                        {
                            request.Headers.ConnectionClose = true;
                            using (var response = await client.SendAsync(request).ConfigureAwait(false))
                            {
                                if (response.StatusCode == HttpStatusCode.OK)
                                {
                                    return clock.Elapsed.TotalMilliseconds;
                                }
                            }
                        }
                    }
                    catch (HttpRequestException)
                    {
                    }
                    catch (TaskCanceledException)
                    {
                    }

                    await Task.Delay(5).ConfigureAwait(false);
                }

                return -1.0;
            }
        });
    }
}
'@

function Wait-FirstOk {
    param([string] $Url, [int] $TimeoutSeconds = 30)
    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $elapsed = [BenchProbe]::FirstOkAsync($Url, $clock, $TimeoutSeconds * 1000).GetAwaiter().GetResult()
    if ($elapsed -lt 0) { throw "$Url did not answer 200 within $TimeoutSeconds s." }
}

#endregion

#region Tools

function Install-BenchTools {
    $installed = Join-Path $Pm2Prefix 'node_modules/pm2/package.json'
    $haveVersion = if (Test-Path $installed) { (Get-Content -Raw $installed | ConvertFrom-Json).version } else { $null }
    if ($haveVersion -ne $Pm2Version) {
        Write-Step "Installing pm2@$Pm2Version into $Pm2Prefix"
        $null = New-Item -ItemType Directory -Force -Path $Pm2Prefix
        $null = Invoke-Checked npm @('install', '--prefix', $Pm2Prefix, '--no-audit', '--no-fund', '--loglevel', 'error', "pm2@$Pm2Version")
    }

    if (-not (Get-Command wrk -CommandType Application -ErrorAction SilentlyContinue)) {
        if (-not $IsLinux -or -not (Get-Command apt-get -CommandType Application -ErrorAction SilentlyContinue)) {
            throw 'wrk is not on PATH and cannot be installed here (no apt-get). Install wrk, then run the benchmark again.'
        }
        Write-Step 'Installing wrk (apt-get)'
        $null = Invoke-Checked apt-get @('update', '-qq')
        $null = Invoke-Checked apt-get @('install', '-y', '-qq', 'wrk')
    }
}

#endregion

#region PM2

# Runs the PM2 command line as a user would (a new node process per call), bounded in time.
function Invoke-Pm2 {
    param([string[]] $Arguments, [int] $TimeoutSeconds = 60, [switch] $AllowFailure)

    $script:Pm2Used = $true
    $start = [System.Diagnostics.ProcessStartInfo]::new((Get-Command node -CommandType Application | Select-Object -First 1).Source)
    $start.ArgumentList.Add($Pm2Cli)
    foreach ($argument in $Arguments) { $start.ArgumentList.Add($argument) }
    $start.RedirectStandardOutput = $true
    $start.RedirectStandardError = $true
    $start.UseShellExecute = $false
    $start.Environment['PM2_HOME'] = $Pm2Home
    $start.Environment['FORCE_COLOR'] = '0'

    $clock = [System.Diagnostics.Stopwatch]::StartNew()
    $process = [System.Diagnostics.Process]::Start($start)
    try {
        $stdout = $process.StandardOutput.ReadToEndAsync()
        $stderr = $process.StandardError.ReadToEndAsync()
        if (-not $process.WaitForExit($TimeoutSeconds * 1000)) {
            $process.Kill($true)
            throw "'pm2 $($Arguments -join ' ')' did not finish within $TimeoutSeconds s."
        }
        $process.WaitForExit()
        $elapsed = $clock.Elapsed.TotalMilliseconds
        if ($process.ExitCode -and -not $AllowFailure) {
            throw "'pm2 $($Arguments -join ' ')' failed with exit code $($process.ExitCode): $($stderr.Result)$($stdout.Result)"
        }
        [pscustomobject]@{ Output = $stdout.Result; ElapsedMs = $elapsed; ExitCode = $process.ExitCode }
    }
    finally {
        $process.Dispose()
    }
}

function Get-Pm2DaemonId {
    $file = Join-Path $Pm2Home 'pm2.pid'
    if (-not (Test-Path $file)) { return $null }
    $id = (Get-Content -Raw $file).Trim() -as [int]
    if ($id -and (Test-ProcessRunning $id)) { $id } else { $null }
}

function Get-Pm2Processes {
    $json = (Invoke-Pm2 @('jlist')).Output
    # jlist prints the array on its last line; anything before it is a notice.
    $line = ($json -split "`n" | Where-Object { $_.TrimStart().StartsWith('[') } | Select-Object -Last 1)
    @($line | ConvertFrom-Json)
}

function Start-Pm2App {
    param([string] $Name, [int] $Port, [string] $StatsFolder)
    $env:PORT = $Port
    $env:BENCH_STATS_DIR = $StatsFolder
    try {
        $null = Invoke-Pm2 @('start', $AppScript, '-i', $InstanceCount, '--name', $Name)
    }
    finally {
        Remove-Item Env:PORT, Env:BENCH_STATS_DIR -ErrorAction SilentlyContinue
    }
    Wait-FirstOk "http://127.0.0.1:$Port/"
}

# Stops the daemon and every app it runs; the daemon's pid file names the process if 'pm2 kill' fails.
function Stop-Pm2 {
    if (-not (Test-Path $Pm2Home)) { return }
    $daemon = Get-Pm2DaemonId
    try {
        $null = Invoke-Pm2 @('kill') -TimeoutSeconds 30 -AllowFailure
    }
    catch {
        Write-Warning "pm2 kill failed: $($_.Exception.Message)"
    }
    if ($daemon -and -not (Wait-ProcessExit $daemon)) {
        Write-Warning "The PM2 daemon (pid $daemon) is still running after 'pm2 kill'; killing it."
        Stop-Process -Id $daemon -Force -ErrorAction SilentlyContinue
    }
}

#endregion

#region Cluster

function Enter-ClusterHome {
    # Short, so the host's Unix socket path stays within its limit.
    $path = Join-Path ([IO.Path]::GetTempPath()) ('clb-' + [guid]::NewGuid().ToString('n').Substring(0, 10))
    $null = New-Item -ItemType Directory -Path $path
    $script:ClusterHomes.Add($path)
    $env:CLUSTER_HOME = $path
    $path
}

# The processes behind a CLUSTER_HOME, found by their command lines (the host's lock file is not readable while
# it runs): the host (--home <home>), its Node primaries (--listen <home>/primaries/...) and their workers.
function Get-ClusterProcessIds([string] $Path) {
    $all = @(Get-Process -ErrorAction SilentlyContinue | Where-Object { Test-ProcessRunning $_.Id })
    $hostIds = @($all | Where-Object { $_.CommandLine -and $_.CommandLine.TrimEnd().EndsWith("--home $Path") } | ForEach-Object { $_.Id })
    $primaryMark = "--listen $(Join-Path $Path 'primaries')"
    $primaryIds = @($all | Where-Object { $_.CommandLine -and $_.CommandLine.Contains($primaryMark) } | ForEach-Object { $_.Id })
    $workerIds = @($all | Where-Object { $_.Parent -and $primaryIds -contains $_.Parent.Id } | ForEach-Object { $_.Id })
    [pscustomobject]@{ Host = $hostIds; Primaries = $primaryIds; Workers = $workerIds }
}

# Stops the host of a CLUSTER_HOME and its apps, kills whatever of them is still running after that, keeps the
# host's logs, and removes the folder.
function Exit-ClusterHome([string] $Path) {
    $previous = $env:CLUSTER_HOME
    $env:CLUSTER_HOME = $Path
    try {
        $started = Get-ClusterProcessIds $Path
        if ($started.Host) {
            for ($attempt = 1; $attempt -le 2; $attempt++) {
                try {
                    Stop-ClusterHost -Confirm:$false
                    break
                }
                catch {
                    Write-Warning "Stop-ClusterHost failed for $Path (attempt $attempt): $($_.Exception.Message)"
                }
            }
        }
        foreach ($kind in 'Host', 'Primaries', 'Workers') {
            foreach ($id in $started.$kind) {
                if (-not (Wait-ProcessExit $id)) {
                    Write-Warning "A Cluster process ($kind, pid $id) of $Path is still running after Stop-ClusterHost; killing it."
                    Stop-Process -Id $id -Force -ErrorAction SilentlyContinue
                }
            }
        }
        $logs = Join-Path $Path 'logs'
        if (Test-Path $logs) {
            Copy-Item $logs (Join-Path $LogRoot "cluster-$(Split-Path $Path -Leaf)") -Recurse -Force -ErrorAction SilentlyContinue
        }
        Remove-Item $Path -Recurse -Force -ErrorAction SilentlyContinue
        $null = $script:ClusterHomes.Remove($Path)
    }
    finally {
        $env:CLUSTER_HOME = if ($previous -eq $Path) { $null } else { $previous }
    }
}

function Start-BenchClusterApp {
    param([string] $Name, [int] $Port, [string] $StatsFolder, [string] $Scheduling = 'RoundRobin')
    $app = Start-ClusterApp -Path $AppScript -Name $Name -Instances $InstanceCount -Scheduling $Scheduling `
        -Environment @{ PORT = "$Port"; BENCH_STATS_DIR = $StatsFolder }
    if (-not $app -or $app.OnlineCount -ne $InstanceCount) {
        throw "Start-ClusterApp $Name did not bring $InstanceCount instances online."
    }
    Wait-FirstOk "http://127.0.0.1:$Port/"
}

#endregion

#region Primary loss

# One SIGKILL of -Kill under the paced load of bench/primary-loss.js: {backMs (null when not back), ok, failed, errors}.
function Invoke-PrimaryLossProbe {
    param([int] $Port, [int] $Kill, [int[]] $OldPids)
    $arguments = @($PrimaryLossScript, '--port', "$Port", '--kill', "$Kill", '--old', ($OldPids -join ','),
        '--concurrency', '4', '--interval-ms', '5', '--before-ms', '500', '--after-ms', '500', '--bound-ms', "$($PrimaryLossBoundSeconds * 1000)")
    $line = Invoke-Checked node $arguments | Select-Object -Last 1
    $line | ConvertFrom-Json
}

# The bench app under Cluster: its Node primary SIGKILLed $PrimaryLossSamples times, each once the app is back
# online; under PM2: its God daemon SIGKILLed (at most 3 times, PM2 started again each time).
function Measure-PrimaryLoss {
    $cluster = [System.Collections.Generic.List[object]]::new()
    $pm2 = [System.Collections.Generic.List[object]]::new()
    $clusterHome = Enter-ClusterHome
    try {
        $port = Get-FreePort
        Start-BenchClusterApp -Name primaryloss -Port $port -StatsFolder (New-StatsFolder 'primaryloss')
        for ($i = 0; $i -lt $PrimaryLossSamples; $i++) {
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            do {
                Start-Sleep -Milliseconds 200
                $app = Get-ClusterApp primaryloss
                $online = @($app.Instances | Where-Object { "$($_.Status)" -eq 'Online' -and $_.Pid })
            } until (($online.Count -eq $InstanceCount -and "$($app.Status)" -eq 'Online') -or $clock.Elapsed.TotalSeconds -gt 30)
            if ($online.Count -ne $InstanceCount) { throw "The app was not back online within 30 s of kill $i." }
            Start-Sleep -Milliseconds 500
            $oldPids = @($online.Pid)
            $sample = Invoke-PrimaryLossProbe -Port $port -Kill (Get-ParentId $oldPids[0]) -OldPids $oldPids
            Write-Host ("    cluster kill {0}: back in {1}, {2} failed" -f ($i + 1), $(if ($null -ne $sample.backMs) { Format-Ms $sample.backMs } else { 'never' }), $sample.failed)
            $cluster.Add($sample)
        }
    }
    finally {
        Exit-ClusterHome $clusterHome
    }

    for ($i = 0; $i -lt [math]::Min(3, $PrimaryLossSamples); $i++) {
        $port = Get-FreePort
        Start-Pm2App -Name primaryloss -Port $port -StatsFolder (New-StatsFolder 'pm2-primaryloss')
        try {
            $oldPids = @(Get-Pm2Processes | Where-Object name -EQ 'primaryloss' | ForEach-Object { [int] $_.pid })
            $daemon = Get-Pm2DaemonId
            if (-not $daemon) { throw 'The PM2 daemon has no pid file.' }
            $sample = Invoke-PrimaryLossProbe -Port $port -Kill $daemon -OldPids $oldPids
            Write-Host ("    pm2 kill {0}: back in {1}, {2} failed" -f ($i + 1), $(if ($null -ne $sample.backMs) { Format-Ms $sample.backMs } else { "never (bound $PrimaryLossBoundSeconds s)" }), $sample.failed)
            $pm2.Add($sample)
        }
        finally {
            foreach ($id in $oldPids) { Stop-Process -Id $id -Force -ErrorAction SilentlyContinue } # workers the dead daemon left, if any
            Stop-Pm2
        }
    }
    [pscustomobject]@{ Cluster = $cluster.ToArray(); Pm2 = $pm2.ToArray() }
}

#endregion

#region wrk

function Start-Wrk {
    param([int] $Port, [switch] $NewConnections, [int] $Seconds, [string] $Label)
    $start = [System.Diagnostics.ProcessStartInfo]::new((Get-Command wrk -CommandType Application | Select-Object -First 1).Source)
    foreach ($argument in @('-t1', '-c16', "-d$($Seconds)s", '--latency', '-s', $WrkScript)) { $start.ArgumentList.Add($argument) }
    if ($NewConnections) {
        $start.ArgumentList.Add('-H')
        $start.ArgumentList.Add('Connection: close')
    }
    $start.ArgumentList.Add("http://127.0.0.1:$Port/")
    $start.RedirectStandardOutput = $true
    $start.RedirectStandardError = $true
    $start.UseShellExecute = $false
    $process = [System.Diagnostics.Process]::Start($start)
    $script:WrkRuns.Add($process)
    [pscustomobject]@{
        Process = $process
        Label = $Label
        Options = "wrk -t1 -c16$(if ($NewConnections) { " -H 'Connection: close'" })"
        Stdout = $process.StandardOutput.ReadToEndAsync()
        Stderr = $process.StandardError.ReadToEndAsync()
    }
}

# Waits for wrk to finish (its -d bounds it); -Now ends it early with SIGINT, on which wrk reports as usual.
function Complete-Wrk {
    param($Run, [switch] $Now)
    $process = $Run.Process
    if ($Now -and -not $process.HasExited) {
        $null = Invoke-Checked (Get-Command kill -CommandType Application | Select-Object -First 1).Source @('-INT', "$($process.Id)")
    }
    if (-not $process.WaitForExit(30000 + 1000 * 200)) {
        $process.Kill()
        throw "wrk ($($Run.Label)) did not stop."
    }
    $process.WaitForExit()
    $text = $Run.Stdout.Result
    $null = $script:WrkRuns.Remove($process)
    $safeLabel = $Run.Label -replace '[^A-Za-z0-9._-]+', '-'
    Set-Content -Path (Join-Path $LogRoot "wrk-$safeLabel.txt") -Value ($text + $Run.Stderr.Result)
    $process.Dispose()

    $line = $text -split "`n" | Where-Object { $_ -like 'WRK_SUMMARY *' } | Select-Object -Last 1
    if (-not $line) { throw "wrk ($($Run.Label)) printed no summary: $text $($Run.Stderr.Result)" }
    $summary = $line.Substring('WRK_SUMMARY '.Length) | ConvertFrom-Json
    $seconds = $summary.durationUs / 1e6
    [pscustomobject]@{
        Label = $Run.Label
        Options = $Run.Options
        Requests = [long]$summary.requests
        Seconds = $seconds
        RequestsPerSecond = if ($seconds -gt 0) { $summary.requests / $seconds } else { 0 }
        Connect = [long]$summary.connect
        Read = [long]$summary.read
        Write = [long]$summary.write
        Timeout = [long]$summary.timeout
        Status = [long]$summary.status
        Failed = [long]($summary.connect + $summary.read + $summary.write + $summary.timeout + $summary.status)
        LatencyP50Ms = $summary.latencyP50Us / 1000
        LatencyP99Ms = $summary.latencyP99Us / 1000
    }
}

#endregion

#region Measures

function Measure-ColdStart {
    $pm2 = [System.Collections.Generic.List[double]]::new()
    $cluster = [System.Collections.Generic.List[double]]::new()
    for ($i = 1; $i -le $ColdStarts; $i++) {
        # PM2: no daemon -> 'pm2 start -i 2' (which starts the daemon) -> first 200.
        Stop-Pm2
        $port = Get-FreePort
        $env:PORT = $port
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $probe = [BenchProbe]::FirstOkAsync("http://127.0.0.1:$port/", $clock, 60000)
        try {
            $null = Invoke-Pm2 @('start', $AppScript, '-i', $InstanceCount, '--name', $AppName)
        }
        finally {
            Remove-Item Env:PORT
        }
        $elapsed = $probe.GetAwaiter().GetResult()
        if ($elapsed -lt 0) { throw 'PM2: no HTTP 200 within 60 s of pm2 start.' }
        $pm2.Add($elapsed)
        Stop-Pm2

        # Cluster: no host -> Start-ClusterApp -Instances 2 (which starts the host) -> first 200.
        $clusterHome = Enter-ClusterHome
        try {
            $port = Get-FreePort
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            $probe = [BenchProbe]::FirstOkAsync("http://127.0.0.1:$port/", $clock, 60000)
            $null = Start-ClusterApp -Path $AppScript -Name $AppName -Instances $InstanceCount -Environment @{ PORT = "$port" }
            $elapsed = $probe.GetAwaiter().GetResult()
            if ($elapsed -lt 0) { throw 'Cluster: no HTTP 200 within 60 s of Start-ClusterApp.' }
            $cluster.Add($elapsed)
        }
        finally {
            Exit-ClusterHome $clusterHome
        }
        Write-Host ("    cold start {0}: PM2 {1:N0} ms, Cluster {2:N0} ms" -f $i, $pm2[-1], $cluster[-1])
    }
    [pscustomobject]@{ Pm2 = $pm2.ToArray(); Cluster = $cluster.ToArray() }
}

# RSS of the Cluster host and of the Node primaries behind the apps' workers.
function Get-ClusterMemory {
    $hostInfo = Get-ClusterHost
    $workers = @(Get-ClusterApp | ForEach-Object { $_.Instances } | ForEach-Object { $_.Pid } | Where-Object { $_ })
    $primaries = @($workers | ForEach-Object { Get-ParentId $_ } | Sort-Object -Unique)
    $hostRss = Get-Rss $hostInfo.Pid
    $primaryRss = @($primaries | ForEach-Object { Get-Rss $_ })
    $workerRss = @($workers | ForEach-Object { Get-Rss $_ })
    [pscustomobject]@{
        HostRss = $hostRss
        PrimaryCount = $primaries.Count
        PrimaryRss = ($primaryRss | Measure-Object -Sum).Sum
        Total = $hostRss + ($primaryRss | Measure-Object -Sum).Sum
        WorkerCount = $workers.Count
        WorkerRss = ($workerRss | Measure-Object -Sum).Sum
    }
}

function Get-Pm2Memory {
    $daemon = Get-Pm2DaemonId
    if (-not $daemon) { throw 'The PM2 daemon is not running.' }
    $workers = @(Get-Pm2Processes | ForEach-Object { $_.pid } | Where-Object { $_ })
    $workerRss = @($workers | ForEach-Object { Get-Rss $_ })
    [pscustomobject]@{
        Total = Get-Rss $daemon
        WorkerCount = $workers.Count
        WorkerRss = ($workerRss | Measure-Object -Sum).Sum
    }
}

function Measure-Memory5 {
    $settle = 3
    Stop-Pm2
    $clusterHome = Enter-ClusterHome
    try {
        for ($n = 1; $n -le $MemoryAppCount; $n++) {
            $port = Get-FreePort
            Start-Pm2App -Name "mem$n" -Port $port -StatsFolder (New-StatsFolder "pm2-mem$n")
            $port = Get-FreePort
            Start-BenchClusterApp -Name "mem$n" -Port $port -StatsFolder (New-StatsFolder "cluster-mem$n")
        }
        Start-Sleep -Seconds $settle
        [pscustomobject]@{ Pm2 = Get-Pm2Memory; Cluster = Get-ClusterMemory }
    }
    finally {
        Stop-Pm2
        Exit-ClusterHome $clusterHome
    }
}

# Peak RSS of a process since it started (VmHWM), from /proc.
function Get-PeakRss([int] $ProcessId) {
    $line = Get-Content "/proc/$ProcessId/status" -ErrorAction Stop | Where-Object { $_ -like 'VmHWM:*' }
    [long] (($line -split '\s+')[1]) * 1KB
}

# Get-ClusterAppLog -Tail N of one instance's 60 MB log, N = 1000, 10000, 100000 (median of $LogTailSamples each),
# with the host's RSS before, its peak over the run, and its RSS 2 s after the last tail.
function Measure-LogTail {
    $clusterHome = Enter-ClusterHome
    try {
        $port = Get-FreePort
        $null = Start-ClusterApp -Path $AppScript -Name logtail -Instances 1 -LogMaxSize 0 -Environment @{ PORT = "$port" }
        Wait-FirstOk "http://127.0.0.1:$port/"
        # 100-byte numbered lines, appended (O_APPEND, as the primary writes) to the instance's log while it runs.
        $log = Join-Path $clusterHome 'logs/logtail-0.out.log'
        $fill = 'const fs = require("fs"); const fd = fs.openSync(process.argv[1], "a"); let n = 0, size = 0; const total = Number(process.argv[2]);' +
            'while (size < total) { let s = ""; for (let i = 0; i < 10000; i++) { n++; const h = `log line ${n} `; s += h + "x".repeat(99 - h.length) + "\n"; }' +
            ' fs.writeSync(fd, s); size += s.length; } fs.closeSync(fd);'
        $null = Invoke-Checked node @('-e', $fill, $log, "$LogTailBytes")
        $logBytes = (Get-Item $log).Length
        $hostPid = (Get-ClusterHost).Pid
        for ($i = 0; $i -lt 3; $i++) { $null = Get-ClusterAppLog logtail -Instance 0 -Tail 10 }
        Start-Sleep -Seconds 2
        $before = Get-Rss $hostPid
        $peakBefore = Get-PeakRss $hostPid
        $times = [ordered]@{}
        foreach ($count in $LogTailCounts) {
            $samples = [System.Collections.Generic.List[double]]::new()
            for ($i = 0; $i -lt $LogTailSamples; $i++) {
                $clock = [System.Diagnostics.Stopwatch]::StartNew()
                $lines = @(Get-ClusterAppLog logtail -Instance 0 -Tail $count)
                $samples.Add($clock.Elapsed.TotalMilliseconds)
                if ($lines.Count -ne $count) { throw "Get-ClusterAppLog -Tail $count returned $($lines.Count) lines." }
                $lines = $null
            }
            $times["$count"] = $samples.ToArray()
            Write-Host ("    -Tail {0}: {1}" -f $count, (($samples | ForEach-Object { Format-Ms $_ }) -join ', '))
        }
        [GC]::Collect()
        Start-Sleep -Seconds 2
        [pscustomobject]@{
            LogBytes = $logBytes
            Times = $times
            HostRssBefore = $before
            HostPeak = Get-PeakRss $hostPid
            HostPeakBefore = $peakBefore
            HostRssAfter = Get-Rss $hostPid
        }
    }
    finally {
        Exit-ClusterHome $clusterHome
    }
}

function Measure-ControlRoundTrip([string] $Name) {
    # Get-ClusterApp in this already-open session: warm up, then time each call.
    for ($i = 0; $i -lt 5; $i++) { $null = Get-ClusterApp }
    $cluster = [System.Collections.Generic.List[double]]::new()
    for ($i = 0; $i -lt $ControlSamples; $i++) {
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $apps = @(Get-ClusterApp)
        $cluster.Add($clock.Elapsed.TotalMilliseconds)
        if ($apps.Count -lt 1) { throw 'Get-ClusterApp returned no app.' }
    }
    # pm2 jlist: a new process per call, as a user runs it.
    $pm2 = [System.Collections.Generic.List[double]]::new()
    for ($i = 0; $i -lt $JlistSamples; $i++) {
        $run = Invoke-Pm2 @('jlist')
        $pm2.Add($run.ElapsedMs)
    }
    [pscustomobject]@{ Pm2 = $pm2.ToArray(); Cluster = $cluster.ToArray() }
}

# Each target gets $LoadSeconds of wrk in $LoadRounds short runs, interleaved with the other targets' runs (order
# reversed every round), so that a change in the machine's other load falls on every target alike.
function Measure-Throughput {
    param([System.Collections.IDictionary] $Targets, [switch] $NewConnections)
    $mode = if ($NewConnections) { 'close' } else { 'keepalive' }
    $slice = [math]::Max(1, [int][math]::Round($LoadSeconds / $LoadRounds))
    $before = @{}
    $runs = @{}
    foreach ($key in $Targets.Keys) {
        $before[$key] = Get-RequestCounts $Targets[$key].Stats
        $runs[$key] = [System.Collections.Generic.List[object]]::new()
    }
    $keys = @($Targets.Keys)
    for ($round = 1; $round -le $LoadRounds; $round++) {
        $order = if ($round % 2) { $keys } else { $keys[($keys.Count - 1)..0] }
        foreach ($key in $order) {
            $run = Start-Wrk -Port $Targets[$key].Port -NewConnections:$NewConnections -Seconds $slice -Label "throughput-$key-$mode-$round"
            $runs[$key].Add((Complete-Wrk $run))
        }
    }
    Start-Sleep -Milliseconds 500   # the app writes its counts every 200 ms

    $results = [ordered]@{}
    foreach ($key in $keys) {
        $parts = $runs[$key]
        $requests = ($parts | Measure-Object -Property Requests -Sum).Sum
        $seconds = ($parts | Measure-Object -Property Seconds -Sum).Sum
        $after = Get-RequestCounts $Targets[$key].Stats
        $shares = foreach ($processId in $after.Keys) {
            $delta = $after[$processId] - $(if ($before[$key].ContainsKey($processId)) { $before[$key][$processId] } else { 0 })
            if ($delta -gt 0) { [pscustomobject]@{ Pid = $processId; Requests = $delta } }
        }
        $result = [pscustomobject]@{
            Runs = $parts.Count
            Requests = $requests
            Seconds = $seconds
            RequestsPerSecond = if ($seconds -gt 0) { $requests / $seconds } else { 0 }
            RunRates = @($parts | ForEach-Object { $_.RequestsPerSecond })
            Failed = ($parts | Measure-Object -Property Failed -Sum).Sum
            LatencyP50Ms = Get-Median @($parts | ForEach-Object { $_.LatencyP50Ms })
            LatencyP99Ms = Get-Median @($parts | ForEach-Object { $_.LatencyP99Ms })
            Distribution = @($shares | Sort-Object Requests -Descending)
        }
        $results[$key] = $result
        Write-Host ("    {0,-14} {1,-9} {2,8:N0} req/s (runs: {3}), {4} failed, spread {5}" -f $key, $mode, $result.RequestsPerSecond, `
            (($result.RunRates | ForEach-Object { '{0:N0}' -f $_ }) -join ' '), $result.Failed, (Format-Distribution $result.Distribution))
    }
    $results
}

# Cluster is timed twice: as it reloads by default (its first new instance stays up for the stability window before
# an old one is retired), and with -StabilityWindow 0, which shows what the reload itself takes.
function Measure-ReloadTime {
    param([string] $Name)
    $pm2 = [System.Collections.Generic.List[double]]::new()
    $cluster = [System.Collections.Generic.List[double]]::new()
    $noWindow = [System.Collections.Generic.List[double]]::new()
    for ($i = 0; $i -lt $ReloadSamples; $i++) {
        $pm2.Add((Invoke-Pm2 @('reload', $Name)).ElapsedMs)
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $null = Invoke-ClusterReload -Name $Name
        $cluster.Add($clock.Elapsed.TotalMilliseconds)
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $null = Invoke-ClusterReload -Name $Name -StabilityWindow 0
        $noWindow.Add($clock.Elapsed.TotalMilliseconds)
    }
    [pscustomobject]@{ Pm2 = $pm2.ToArray(); Cluster = $cluster.ToArray(); ClusterNoWindow = $noWindow.ToArray() }
}

# wrk runs (bounded by -d) while the app is reloaded $Reloads times back to back; then wrk is stopped.
function Measure-ReloadUnderLoad {
    param([string] $Tool, [int] $Port, [string] $Name, [switch] $NewConnections)
    $mode = if ($NewConnections) { 'close' } else { 'keepalive' }
    $bound = 30 + 20 * $Reloads
    $run = Start-Wrk -Port $Port -NewConnections:$NewConnections -Seconds $bound -Label "reload-$Tool-$mode"
    $times = [System.Collections.Generic.List[double]]::new()
    $reloadErrors = [System.Collections.Generic.List[string]]::new()
    try {
        Start-Sleep -Seconds 1
        for ($i = 0; $i -lt $Reloads; $i++) {
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            try {
                if ($Tool -eq 'pm2') {
                    $null = Invoke-Pm2 @('reload', $Name)
                }
                else {
                    $null = Invoke-ClusterReload -Name $Name
                }
            }
            catch {
                $reloadErrors.Add($_.Exception.Message)
            }
            $times.Add($clock.Elapsed.TotalMilliseconds)
        }
        Start-Sleep -Seconds 1
    }
    finally {
        $result = Complete-Wrk $run -Now
    }
    $result | Add-Member -NotePropertyName ReloadTimes -NotePropertyValue $times.ToArray()
    $result | Add-Member -NotePropertyName ReloadErrors -NotePropertyValue $reloadErrors.ToArray()
    Write-Host ("    {0,-8} {1,-9} {2} reloads, {3:N0} requests, {4} failed (connect {5}, read {6}, write {7}, timeout {8}, HTTP {9}){10}" -f `
            $Tool, $mode, $times.Count, $result.Requests, $result.Failed, $result.Connect, $result.Read, $result.Write, $result.Timeout, $result.Status, `
        $(if ($reloadErrors.Count) { ", $($reloadErrors.Count) reload(s) failed" }))
    $result
}

function Wait-Listening([int] $Port, [int] $TimeoutSeconds = 30) {
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        $client = [System.Net.Sockets.TcpClient]::new()
        try {
            $client.Connect([System.Net.IPAddress]::Loopback, $Port)
            return
        }
        catch {
            Start-Sleep -Milliseconds 50
        }
        finally {
            $client.Dispose()
        }
    }
    throw "Nothing listens on 127.0.0.1:$Port after $TimeoutSeconds s."
}

# The long-lived connections app (KIND ws or h2), 2 instances, under one tool, reloaded $LongLivedReloads times while
# its client (4 WebSocket connections, or 2 HTTP/2 sessions of 4 streams each) runs; then the client's counts.
# -StabilityWindow (Cluster only) is passed to each reload when given.
function Measure-LongLivedReload {
    param([ValidateSet('pm2', 'cluster')] [string] $Tool, [ValidateSet('ws', 'h2')] [string] $Kind, [int] $StabilityWindow = -1)
    $window = if ($StabilityWindow -ge 0) { @{ StabilityWindow = $StabilityWindow } } else { @{} }
    $name = "bench-$Kind"
    $port = Get-FreePort
    if ($Tool -eq 'pm2') {
        $env:PORT = $port
        $env:KIND = $Kind
        try {
            $null = Invoke-Pm2 @('start', $LongLivedApp, '-i', $InstanceCount, '--name', $name)
        }
        finally {
            Remove-Item Env:PORT, Env:KIND -ErrorAction SilentlyContinue
        }
    }
    else {
        $null = Start-ClusterApp -Path $LongLivedApp -Name $name -Instances $InstanceCount -Environment @{ PORT = "$port"; KIND = $Kind }
    }
    Wait-Listening $port
    $work = Join-Path $WorkRoot "client-$Tool-$Kind"
    Remove-Item $work -Recurse -Force -ErrorAction SilentlyContinue
    $null = New-Item -ItemType Directory -Path $work
    $stop = Join-Path $work 'stop'
    $ready = Join-Path $work 'ready'
    $start = [System.Diagnostics.ProcessStartInfo]::new((Get-Command node -CommandType Application | Select-Object -First 1).Source)
    $connections = if ($Kind -eq 'ws') { 4 } else { 2 }
    foreach ($argument in @($LongLivedClient, '--kind', $Kind, '--port', "$port", '--connections', "$connections", '--streams', '4',
            '--stop', $stop, '--ready', $ready, '--max-seconds', "$(30 + 15 * $LongLivedReloads)")) { $start.ArgumentList.Add($argument) }
    $start.RedirectStandardOutput = $true
    $start.RedirectStandardError = $true
    $start.UseShellExecute = $false
    $client = [System.Diagnostics.Process]::Start($start)
    $stdout = $client.StandardOutput.ReadToEndAsync()
    $stderr = $client.StandardError.ReadToEndAsync()
    $times = [System.Collections.Generic.List[double]]::new()
    $reloadErrors = [System.Collections.Generic.List[string]]::new()
    try {
        $deadline = [DateTime]::UtcNow.AddSeconds(30)
        while (-not (Test-Path $ready) -and -not $client.HasExited -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
        if (-not (Test-Path $ready)) { throw "The $Kind client got no answers: $($stderr.Result)" }
        for ($i = 0; $i -lt $LongLivedReloads; $i++) {
            $clock = [System.Diagnostics.Stopwatch]::StartNew()
            try {
                if ($Tool -eq 'pm2') { $null = Invoke-Pm2 @('reload', $name) }
                else { $null = Invoke-ClusterReload -Name $name @window }
            }
            catch {
                $reloadErrors.Add($_.Exception.Message)
            }
            $times.Add($clock.Elapsed.TotalMilliseconds)
            Start-Sleep -Milliseconds 500
        }
    }
    finally {
        $null = New-Item -ItemType File -Path $stop -Force
        if (-not $client.WaitForExit(60000)) { $client.Kill() }
        $client.WaitForExit()
        if ($Tool -eq 'pm2') { $null = Invoke-Pm2 @('delete', $name) -AllowFailure }
        else { Remove-ClusterApp -Name $name -Confirm:$false -ErrorAction SilentlyContinue }
    }
    if (-not $stdout.Result) { throw "The $Kind client wrote no result: $($stderr.Result)" }
    $counts = $stdout.Result | ConvertFrom-Json -AsHashtable
    $result = [pscustomobject]@{
        Tool = $Tool
        Kind = $Kind
        Window = $StabilityWindow
        ReloadTimes = $times.ToArray()
        ReloadErrors = $reloadErrors.ToArray()
        Sent = [long] $counts.sent
        Lost = [long] $counts.lost
        Abrupt = [long] $counts.abrupt
        Resent = [long] $counts.resent
        Closes = (@($counts.closes.Keys | Sort-Object | ForEach-Object { "$_ × $($counts.closes[$_])" }) -join ', ')
        Goaways = [long] $counts.goaways
        Errors = (@($counts.errors.Keys | ForEach-Object { "$_ × $($counts.errors[$_])" }) -join ', ')
    }
    Write-Host ("    {0,-8} {1,-3} {2} reloads, median {3:N0} ms; {4:N0} sent, {5} lost, {6} abrupt ends, {7} resent after a clean end; closes {8}; GOAWAYs {9}; errors {10}" -f `
            $Tool, $Kind, $times.Count, (Get-Median $times.ToArray()), $result.Sent, $result.Lost, $result.Abrupt, $result.Resent, $result.Closes, $result.Goaways, $result.Errors)
    $result
}

#endregion

#region Report

function Format-Ms([double] $Value) {
    if ([double]::IsNaN($Value)) { return 'n/a' }
    if ($Value -lt 10) { return '{0:N2} ms' -f $Value }
    if ($Value -lt 100) { return '{0:N1} ms' -f $Value }
    '{0:N0} ms' -f $Value
}

function Format-MB([double] $Bytes) { '{0:N1} MB' -f ($Bytes / $MiB) }

function Format-Count([int] $Count, [string] $One, [string] $Many) { "$Count $(if ($Count -eq 1) { $One } else { $Many })" }

function Format-Distribution($Shares) {
    $shares = @($Shares)
    $total = ($shares | Measure-Object -Property Requests -Sum).Sum
    if (-not $total) { return 'n/a' }
    ($shares | ForEach-Object { '{0:N0}%' -f (100 * $_.Requests / $total) }) -join ' / '
}

function Format-TopShare($Shares) {
    $shares = @($Shares)
    $total = ($shares | Measure-Object -Property Requests -Sum).Sum
    if (-not $total) { return 'n/a' }
    '{0:N0}%' -f (100 * $shares[0].Requests / $total)
}

function Format-Failed($Result) {
    $parts = @()
    foreach ($kind in 'Connect', 'Read', 'Write', 'Timeout') {
        if ($Result.$kind) { $parts += "$($kind.ToLowerInvariant()) $($Result.$kind)" }
    }
    if ($Result.Status) { $parts += "HTTP $($Result.Status)" }
    $detail = if ($parts) { " ($($parts -join ', '))" } else { '' }
    '{0:N0} of {1:N0}{2}' -f $Result.Failed, $Result.Requests, $detail
}

function New-Row {
    param([string] $Measure, [string] $Pm2, [string] $Cluster, [double] $Ratio = [double]::NaN, [string] $Target = '—', [object] $Met = $null)
    [pscustomobject]@{
        Measure = $Measure
        PM2 = $Pm2
        Cluster = $Cluster
        Ratio = if ([double]::IsNaN($Ratio)) { '—' } else { '{0:N3}' -f $Ratio }
        Target = $Target
        'Met?' = if ($null -eq $Met) { '—' } elseif ($Met) { 'yes' } else { '**no**' }
    }
}

function ConvertTo-MarkdownTable($Rows) {
    $rows = @($Rows)
    $columns = @($rows[0].PSObject.Properties.Name)
    $lines = [System.Collections.Generic.List[string]]::new()
    $lines.Add('| ' + ($columns -join ' | ') + ' |')
    $lines.Add('|' + (($columns | ForEach-Object { '---' }) -join '|') + '|')
    foreach ($row in $rows) {
        $lines.Add('| ' + (($columns | ForEach-Object { ("$($row.$_)") -replace '\|', '\|' }) -join ' | ') + ' |')
    }
    $lines -join "`n"
}

function Get-EnvironmentFacts {
    $cpuModel = if (Test-Path /proc/cpuinfo) {
        (Select-String -Path /proc/cpuinfo -Pattern '^model name\s*:\s*(.+)$' | Select-Object -First 1).Matches[0].Groups[1].Value
    }
    $os = if (Test-Path /etc/os-release) {
        (Select-String -Path /etc/os-release -Pattern '^PRETTY_NAME="?([^"]+)"?' | Select-Object -First 1).Matches[0].Groups[1].Value
    }
    else { [System.Runtime.InteropServices.RuntimeInformation]::OSDescription }
    $kernel = if ($IsLinux) { (Invoke-Checked uname @('-r')) -join '' } else { '' }
    $wrkVersion = if (Get-Command wrk -CommandType Application -ErrorAction SilentlyContinue) {
        (& wrk -v 2>&1 | Select-Object -First 1) -replace '\s+Copyright.*$', ''
    }
    else { 'not used in this run' }
    $pm2Package = Join-Path $Pm2Prefix 'node_modules/pm2/package.json'
    $module = Get-Module Cluster
    $commit = & git -C $RepoRoot rev-parse --short HEAD 2>$null
    [ordered]@{
        Date = (Get-Date).ToUniversalTime().ToString('yyyy-MM-dd HH:mm') + ' UTC'
        CPUs = "$([Environment]::ProcessorCount)$(if ($cpuModel) { " × $cpuModel" })"
        OS = "$os$(if ($kernel) { ", kernel $kernel" })"
        Node = (Invoke-Checked node @('--version')) -join ''
        PM2 = if ($NeedsPm2 -and (Test-Path $pm2Package)) { (Get-Content -Raw $pm2Package | ConvertFrom-Json).version } else { 'not used in this run' }
        wrk = "$wrkVersion"
        Cluster = "$($module.Version)$(if ($commit) { " (commit $commit)" })"
        PowerShell = "$($PSVersionTable.PSVersion)"
    }
}

function Get-LoadAverage {
    if (Test-Path /proc/loadavg) { ((Get-Content -Raw /proc/loadavg) -split ' ')[0..2] -join ' ' } else { 'n/a' }
}

#endregion

#region Run

$null = New-Item -ItemType Directory -Force -Path $WorkRoot, $StatsRoot, $LogRoot
Get-ChildItem -Path $LogRoot | Remove-Item -Recurse -Force
# Every measure but the log tail runs PM2 (and wrk) beside Cluster.
$NeedsPm2 = Test-Selected @('ColdStart', 'Memory1', 'Control', 'ThroughputKeepAlive', 'ThroughputClose', 'ReloadTime',
    'ReloadPm2KeepAlive', 'ReloadClusterKeepAlive', 'ReloadPm2Close', 'ReloadClusterClose', 'Memory5', 'ReloadWebSocket', 'ReloadHttp2', 'PrimaryLoss')
if ($NeedsPm2) { Install-BenchTools }
Import-Module $ModulePath -Force
$env:NO_COLOR = '1'
$facts = Get-EnvironmentFacts
$loadBefore = Get-LoadAverage
Write-Step "Benchmarking Cluster $($facts.Cluster) against PM2 $($facts.PM2) (load average $loadBefore)"

# A measure that fails is reported as failed; the others still run.
$results = @{}
$failures = @{}
function Invoke-Measure {
    param([string] $Name, [scriptblock] $Body)
    if (-not (Test-Selected $Name)) { return }
    try {
        $results[$Name] = & $Body
    }
    catch {
        $failures[$Name] = "$($_.Exception.Message)"
        Write-Warning "$Name failed: $($_.Exception.Message)"
    }
}

$mainHome = $null
try {
    if ($NeedsPm2) { Stop-Pm2 }

    if (Test-Selected 'ColdStart') {
        Write-Step "Cold start: nothing running -> $InstanceCount instances -> first HTTP 200 ($ColdStarts each)"
        Invoke-Measure ColdStart { Measure-ColdStart }
    }

    $sideBySide = @('Memory1', 'Control', 'ThroughputKeepAlive', 'ThroughputClose', 'ReloadTime',
        'ReloadPm2KeepAlive', 'ReloadClusterKeepAlive', 'ReloadPm2Close', 'ReloadClusterClose')
    if (Test-Selected $sideBySide) {
        Write-Step "Starting '$AppName' ($InstanceCount instances) under PM2 and under Cluster (RoundRobin)"
        $pm2Port = Get-FreePort
        $pm2Stats = New-StatsFolder 'pm2'
        Start-Pm2App -Name $AppName -Port $pm2Port -StatsFolder $pm2Stats
        $mainHome = Enter-ClusterHome
        $clusterPort = Get-FreePort
        $clusterStats = New-StatsFolder 'cluster-rr'
        Start-BenchClusterApp -Name $AppName -Port $clusterPort -StatsFolder $clusterStats -Scheduling RoundRobin
        Start-Sleep -Seconds 3

        Write-Step 'Memory with 1 app'
        Invoke-Measure Memory1 { [pscustomobject]@{ Pm2 = Get-Pm2Memory; Cluster = Get-ClusterMemory } }

        Write-Step "Control round trip: Get-ClusterApp x $ControlSamples in this session, pm2 jlist x $JlistSamples"
        Invoke-Measure Control { Measure-ControlRoundTrip $AppName }

        Write-Step "Throughput: wrk -t1 -c16, $LoadSeconds s per target in $LoadRounds interleaved runs, keep-alive and 'Connection: close'"
        $sharedPort = Get-FreePort
        $sharedStats = New-StatsFolder 'cluster-shared'
        Start-BenchClusterApp -Name $SharedAppName -Port $sharedPort -StatsFolder $sharedStats -Scheduling Shared
        $targets = [ordered]@{
            pm2 = @{ Port = $pm2Port; Stats = $pm2Stats }
            'cluster-rr' = @{ Port = $clusterPort; Stats = $clusterStats }
            'cluster-shared' = @{ Port = $sharedPort; Stats = $sharedStats }
        }
        Invoke-Measure ThroughputKeepAlive { Measure-Throughput -Targets $targets }
        Invoke-Measure ThroughputClose { Measure-Throughput -Targets $targets -NewConnections }

        Write-Step "Reload wall time, $InstanceCount instances, no load ($ReloadSamples each)"
        Invoke-Measure ReloadTime { Measure-ReloadTime $AppName }

        Write-Step "Failed requests during $Reloads reloads under wrk -t1 -c16"
        Invoke-Measure ReloadPm2KeepAlive { Measure-ReloadUnderLoad -Tool pm2 -Port $pm2Port -Name $AppName }
        Invoke-Measure ReloadClusterKeepAlive { Measure-ReloadUnderLoad -Tool cluster -Port $clusterPort -Name $AppName }
        Invoke-Measure ReloadPm2Close { Measure-ReloadUnderLoad -Tool pm2 -Port $pm2Port -Name $AppName -NewConnections }
        Invoke-Measure ReloadClusterClose { Measure-ReloadUnderLoad -Tool cluster -Port $clusterPort -Name $AppName -NewConnections }

        Stop-Pm2
        Exit-ClusterHome $mainHome
        $mainHome = $null
    }

    if (Test-Selected @('ReloadWebSocket', 'ReloadHttp2')) {
        Write-Step "Lost messages and streams during $LongLivedReloads reloads under a WebSocket and an HTTP/2 client"
        $longLivedHome = Enter-ClusterHome
        foreach ($case in @(@{ Name = 'ReloadWebSocket'; Kind = 'ws' }, @{ Name = 'ReloadHttp2'; Kind = 'h2' })) {
            $kind = $case.Kind
            Invoke-Measure $case.Name {
                [pscustomobject]@{
                    Pm2 = Measure-LongLivedReload -Tool pm2 -Kind $kind
                    Cluster = Measure-LongLivedReload -Tool cluster -Kind $kind
                    ClusterNoWindow = Measure-LongLivedReload -Tool cluster -Kind $kind -StabilityWindow 0
                }
            }
        }
        Stop-Pm2
        Exit-ClusterHome $longLivedHome
    }

    if (Test-Selected 'Memory5') {
        Write-Step "Memory with $MemoryAppCount apps ($InstanceCount instances each)"
        Invoke-Measure Memory5 { Measure-Memory5 }
    }

    if (Test-Selected 'PrimaryLoss') {
        Write-Step "Primary loss: SIGKILL of Cluster's Node primary ($PrimaryLossSamples times) and of PM2's daemon, under a paced load"
        Invoke-Measure PrimaryLoss { Measure-PrimaryLoss }
    }

    if (Test-Selected 'LogTail') {
        Write-Step "Log tail: Get-ClusterAppLog -Tail $($LogTailCounts -join ' / ') of a $(Format-MB $LogTailBytes) log ($LogTailSamples each)"
        Invoke-Measure LogTail { Measure-LogTail }
    }
}
finally {
    foreach ($process in @($script:WrkRuns)) {
        if (-not $process.HasExited) { $process.Kill() }
    }
    if ($script:Pm2Used) { Stop-Pm2 }
    foreach ($path in @($script:ClusterHomes)) { Exit-ClusterHome $path }
    if (Test-Path $StatsRoot) { Remove-Item $StatsRoot -Recurse -Force -ErrorAction SilentlyContinue }
}
$loadAfter = Get-LoadAverage

#endregion

#region Table

# True when every named measure produced a result; otherwise a row that says which failed and why.
function Test-Measured {
    param([string[]] $Names, [string] $Measure, [string] $Target = '—', [System.Collections.Generic.List[object]] $Into)
    if (-not (Test-Selected $Names)) { return $false } # not asked for in this run (-Only)
    $missing = @($Names | Where-Object { -not $results.ContainsKey($_) })
    if (-not $missing) { return $true }
    $why = ($missing | ForEach-Object { "$_ failed: $(if ($failures.ContainsKey($_)) { $failures[$_] } else { 'not run' })" }) -join '; '
    $Into.Add((New-Row -Measure $Measure -Pm2 'not measured' -Cluster $why -Target $Target -Met $(if ($Target -eq '—') { $null } else { $false })))
    $false
}

$rows = [System.Collections.Generic.List[object]]::new()
foreach ($case in @(
        @{ Label = 'keep-alive'; Pm2 = 'ReloadPm2KeepAlive'; Cluster = 'ReloadClusterKeepAlive' }
        @{ Label = "'Connection: close'"; Pm2 = 'ReloadPm2Close'; Cluster = 'ReloadClusterClose' })) {
    $measure = "Failed requests during $Reloads reloads, wrk -t1 -c16, $($case.Label)"
    if (Test-Measured @($case.Pm2, $case.Cluster) $measure 'Cluster: 0' $rows) {
        $pm2Run = $results[$case.Pm2]
        $clusterRun = $results[$case.Cluster]
        $clusterText = (Format-Failed $clusterRun) + $(if ($clusterRun.ReloadErrors.Count) { "; $($clusterRun.ReloadErrors.Count) reload(s) failed" })
        $rows.Add((New-Row -Measure $measure -Pm2 (Format-Failed $pm2Run) -Cluster $clusterText `
                    -Target 'Cluster: 0' -Met ($clusterRun.Failed -eq 0 -and $clusterRun.ReloadErrors.Count -eq 0)))
    }
}

foreach ($case in @(
        @{ Name = 'ReloadWebSocket'; Label = 'WebSocket messages'; Load = '4 WebSocket connections' }
        @{ Name = 'ReloadHttp2'; Label = 'HTTP/2 streams'; Load = '2 HTTP/2 sessions × 4 streams' })) {
    $measure = "Lost $($case.Label) during $LongLivedReloads reloads, $($case.Load) (lost + abruptly ended connections)"
    if (Test-Measured @($case.Name) $measure 'Cluster: 0' $rows) {
        $pm2Run = $results[$case.Name].Pm2
        $clusterRun = $results[$case.Name].Cluster
        $text = { param($r) '{0} lost of {1:N0}, {2} abrupt' -f $r.Lost, $r.Sent, $r.Abrupt }
        $rows.Add((New-Row -Measure $measure -Pm2 (& $text $pm2Run) -Cluster (& $text $clusterRun) -Target 'Cluster: 0' `
                    -Met ($clusterRun.Lost -eq 0 -and $clusterRun.Abrupt -eq 0 -and $clusterRun.ReloadErrors.Count -eq 0)))
        $pm2Time = Get-Median $pm2Run.ReloadTimes
        $clusterTime = Get-Median $clusterRun.ReloadTimes
        $rows.Add((New-Row -Measure "Reload wall time under $($case.Load), $InstanceCount instances (median of $LongLivedReloads)" `
                    -Pm2 (Format-Ms $pm2Time) -Cluster (Format-Ms $clusterTime) -Ratio ($clusterTime / $pm2Time) -Target '≤ 1.0' -Met (($clusterTime / $pm2Time) -le 1.0)))
        $noWindowRun = $results[$case.Name].ClusterNoWindow
        $noWindowTime = Get-Median $noWindowRun.ReloadTimes
        $rows.Add((New-Row -Measure "The same with Invoke-ClusterReload -StabilityWindow 0 (lost, reload wall time)" `
                    -Pm2 (Format-Ms $pm2Time) -Cluster ('{0} lost, {1} abrupt; {2}' -f $noWindowRun.Lost, $noWindowRun.Abrupt, (Format-Ms $noWindowTime)) -Ratio ($noWindowTime / $pm2Time) -Target '≤ 1.0' `
                    -Met (($noWindowTime / $pm2Time) -le 1.0 -and $noWindowRun.Lost -eq 0 -and $noWindowRun.Abrupt -eq 0)))
    }
}

$measure = "Reload wall time, $InstanceCount instances, no load (median of $ReloadSamples)"
if (Test-Measured @('ReloadTime') $measure '—' $rows) {
    $pm2Reload = Get-Median $results.ReloadTime.Pm2
    $clusterReload = Get-Median $results.ReloadTime.Cluster
    $rows.Add((New-Row -Measure $measure -Pm2 (Format-Ms $pm2Reload) -Cluster (Format-Ms $clusterReload) -Ratio ($clusterReload / $pm2Reload)))
    $noWindowReload = Get-Median $results.ReloadTime.ClusterNoWindow
    $rows.Add((New-Row -Measure 'The same with Invoke-ClusterReload -StabilityWindow 0' -Pm2 (Format-Ms $pm2Reload) -Cluster (Format-Ms $noWindowReload) -Ratio ($noWindowReload / $pm2Reload)))
}

$measure = "Cold start to first HTTP 200, $InstanceCount instances (median of $ColdStarts)"
if (Test-Measured @('ColdStart') $measure '≤ 0.5' $rows) {
    $pm2Cold = Get-Median $results.ColdStart.Pm2
    $clusterCold = Get-Median $results.ColdStart.Cluster
    $rows.Add((New-Row -Measure $measure -Pm2 (Format-Ms $pm2Cold) -Cluster (Format-Ms $clusterCold) -Ratio ($clusterCold / $pm2Cold) `
                -Target '≤ 0.5' -Met (($clusterCold / $pm2Cold) -le 0.5)))
}

$measure = "Control round trip: pm2 jlist (median of $JlistSamples) vs Get-ClusterApp (median of $ControlSamples)"
if (Test-Measured @('Control') $measure '≤ 0.02 (1/50)' $rows) {
    $pm2Control = Get-Median $results.Control.Pm2
    $clusterControl = Get-Median $results.Control.Cluster
    $rows.Add((New-Row -Measure $measure -Pm2 (Format-Ms $pm2Control) -Cluster (Format-Ms $clusterControl) -Ratio ($clusterControl / $pm2Control) `
                -Target '≤ 0.02 (1/50)' -Met (($clusterControl / $pm2Control) -le 0.02)))
}

foreach ($case in @(
        @{ Label = 'keep-alive'; Name = 'ThroughputKeepAlive'; Target = 1.0 }
        @{ Label = 'new connection per request'; Name = 'ThroughputClose'; Target = 2.0 })) {
    foreach ($policy in 'cluster-rr', 'cluster-shared') {
        $policyName = if ($policy -eq 'cluster-rr') { 'RoundRobin' } else { 'Shared' }
        $target = '≥ {0:N1}' -f $case.Target
        $measure = "Throughput, wrk -t1 -c16, $LoadSeconds s, $($case.Label), Cluster -Scheduling $policyName (req/s)"
        if (Test-Measured @($case.Name) $measure $target $rows) {
            $pm2Rps = $results[$case.Name]['pm2'].RequestsPerSecond
            $rps = $results[$case.Name][$policy].RequestsPerSecond
            $rows.Add((New-Row -Measure $measure -Pm2 ('{0:N0}' -f $pm2Rps) -Cluster ('{0:N0}' -f $rps) -Ratio ($rps / $pm2Rps) `
                        -Target $target -Met (($rps / $pm2Rps) -ge $case.Target)))
        }
    }
}

$memoryCases = @(
    @{ Label = '1 app'; Name = 'Memory1' }
    @{ Label = "$MemoryAppCount apps"; Name = 'Memory5' })
foreach ($case in $memoryCases) {
    $measure = "Memory, $($case.Label) × $InstanceCount instances: PM2 daemon vs Cluster host + Node primaries (RSS)"
    if (Test-Measured @($case.Name) $measure '≤ 1.0' $rows) {
        $pm2Bytes = $results[$case.Name].Pm2.Total
        $cluster = $results[$case.Name].Cluster
        $rows.Add((New-Row -Measure $measure -Pm2 (Format-MB $pm2Bytes) `
                    -Cluster ("{0} (host {1} + {2} {3})" -f (Format-MB $cluster.Total), (Format-MB $cluster.HostRss), (Format-Count $cluster.PrimaryCount 'primary' 'primaries'), (Format-MB $cluster.PrimaryRss)) `
                    -Ratio ($cluster.Total / $pm2Bytes) -Target '≤ 1.0' -Met (($cluster.Total / $pm2Bytes) -le 1.0)))
    }
}
foreach ($case in $memoryCases) {
    if ($results.ContainsKey($case.Name)) {
        $data = $results[$case.Name]
        $rows.Add((New-Row -Measure "Worker RSS, $($case.Label) ($($data.Cluster.WorkerCount) workers; for information)" `
                    -Pm2 (Format-MB $data.Pm2.WorkerRss) -Cluster (Format-MB $data.Cluster.WorkerRss) -Ratio ($data.Cluster.WorkerRss / $data.Pm2.WorkerRss)))
    }
}

$measure = "SIGKILL of the Node primary (PM2: of its God daemon) under paced load -> first HTTP 200 again, median of kills; failed requests per kill (median)"
if (Test-Measured @('PrimaryLoss') $measure '≤ 1 s' $rows) {
    $loss = $results.PrimaryLoss
    $describe = {
        param($Samples)
        $back = @($Samples | Where-Object { $null -ne $_.backMs } | ForEach-Object { [double] $_.backMs })
        $failed = Get-Median @($Samples | ForEach-Object { [double] $_.failed })
        $when = if ($back.Count -eq 0) { "never back within $PrimaryLossBoundSeconds s" } else { "$(Format-Ms (Get-Median $back))$(if ($back.Count -lt @($Samples).Count) { " ($($back.Count) of $(@($Samples).Count) back)" })" }
        "$when; $failed failed ($(@($Samples).Count) kills)"
    }
    $clusterBack = @($loss.Cluster | Where-Object { $null -ne $_.backMs } | ForEach-Object { [double] $_.backMs })
    $met = $clusterBack.Count -eq @($loss.Cluster).Count -and (Get-Median $clusterBack) -le 1000
    $rows.Add((New-Row -Measure $measure -Pm2 (& $describe $loss.Pm2) -Cluster (& $describe $loss.Cluster) -Target '≤ 1 s' -Met $met))
}

$measure = "Get-ClusterAppLog -Tail N of one instance's $(Format-MB $LogTailBytes) log, N = $($LogTailCounts -join ' / ') (median of $LogTailSamples)"
if (Test-Measured @('LogTail') $measure '—' $rows) {
    $tail = $results.LogTail
    $medians = @($LogTailCounts | ForEach-Object { Get-Median $tail.Times["$_"] })
    $rows.Add((New-Row -Measure $measure -Pm2 'not measured' -Cluster (($medians | ForEach-Object { Format-Ms $_ }) -join ' / ')))
    $rows.Add((New-Row -Measure "Host RSS around those tails: before / peak / 2 s after" -Pm2 'not measured' `
                -Cluster ('{0} / {1} / {2}' -f (Format-MB $tail.HostRssBefore), (Format-MB $tail.HostPeak), (Format-MB $tail.HostRssAfter)) `
                -Target 'after ≤ before + 5 MB' -Met ($tail.HostRssAfter -le $tail.HostRssBefore + 5MB)))
}

$distribution = [System.Collections.Generic.List[object]]::new()
foreach ($case in @(
        @{ Label = 'keep-alive'; Name = 'ThroughputKeepAlive' }
        @{ Label = 'new connection per request'; Name = 'ThroughputClose' })) {
    if (-not $results.ContainsKey($case.Name)) { continue }
    foreach ($entry in @(
            @{ Key = 'pm2'; Name = 'PM2 (cluster mode, round-robin)' }
            @{ Key = 'cluster-rr'; Name = 'Cluster -Scheduling RoundRobin' }
            @{ Key = 'cluster-shared'; Name = 'Cluster -Scheduling Shared' })) {
        $run = $results[$case.Name][$entry.Key]
        $distribution.Add([pscustomobject]@{
                Load = $case.Label
                Scheduler = $entry.Name
                'req/s' = '{0:N0}' -f $run.RequestsPerSecond
                'req/s of each run' = (@($run.RunRates) | ForEach-Object { '{0:N0}' -f $_ }) -join ', '
                'Share per instance' = Format-Distribution $run.Distribution
                'Requests per instance' = (@($run.Distribution) | ForEach-Object { '{0:N0}' -f $_.Requests }) -join ' / '
                'p50 / p99 latency (median of runs)' = ('{0} / {1}' -f (Format-Ms $run.LatencyP50Ms), (Format-Ms $run.LatencyP99Ms))
                Failed = $run.Failed
            })
    }
}

$reloadRuns = [System.Collections.Generic.List[object]]::new()
foreach ($entry in @(
        @{ Tool = 'PM2 (pm2 reload)'; Name = 'ReloadPm2KeepAlive'; Load = 'keep-alive' }
        @{ Tool = 'Cluster (Invoke-ClusterReload)'; Name = 'ReloadClusterKeepAlive'; Load = 'keep-alive' }
        @{ Tool = 'PM2 (pm2 reload)'; Name = 'ReloadPm2Close'; Load = "'Connection: close'" }
        @{ Tool = 'Cluster (Invoke-ClusterReload)'; Name = 'ReloadClusterClose'; Load = "'Connection: close'" })) {
    if (-not $results.ContainsKey($entry.Name)) { continue }
    $run = $results[$entry.Name]
    $reloadRuns.Add([pscustomobject]@{
            Tool = $entry.Tool
            Load = $entry.Load
            Reloads = "$($run.ReloadTimes.Count)$(if ($run.ReloadErrors.Count) { " ($($run.ReloadErrors.Count) failed)" })"
            'Reload time, median (max)' = ('{0} ({1})' -f (Format-Ms (Get-Median $run.ReloadTimes)), (Format-Ms (($run.ReloadTimes | Measure-Object -Maximum).Maximum)))
            'wrk run' = ('{0:N1} s, {1:N0} requests' -f $run.Seconds, $run.Requests)
            'Socket errors (connect/read/write/timeout)' = ('{0}/{1}/{2}/{3}' -f $run.Connect, $run.Read, $run.Write, $run.Timeout)
            'HTTP errors' = $run.Status
        })
}

$notes = [System.Collections.Generic.List[string]]::new()
if ($results.ContainsKey('Memory1') -and $results.ContainsKey('Memory5')) {
    $m1 = $results.Memory1
    $m5 = $results.Memory5
    $perPrimary = if ($m5.Cluster.PrimaryCount) { $m5.Cluster.PrimaryRss / $m5.Cluster.PrimaryCount } else { 0 }
    $notes.Add(('Memory: with {0} apps Cluster ran {1} for its {2}, {3} each on average, beside a host of {4} ({5} with 1 app); PM2 keeps every app in its one daemon ({6} with 1 app, {7} with {0}).' -f `
                $MemoryAppCount, (Format-Count $m5.Cluster.PrimaryCount 'Node primary' 'Node primaries'), (Format-Count $m5.Cluster.WorkerCount 'worker' 'workers'), (Format-MB $perPrimary), (Format-MB $m5.Cluster.HostRss), (Format-MB $m1.Cluster.HostRss), (Format-MB $m1.Pm2.Total), (Format-MB $m5.Pm2.Total)))
}
foreach ($case in @(
        @{ Label = 'keep-alive'; Name = 'ThroughputKeepAlive' }
        @{ Label = 'a new connection per request'; Name = 'ThroughputClose' })) {
    if (-not $results.ContainsKey($case.Name)) { continue }
    $data = $results[$case.Name]
    $notes.Add(('Scheduling, {0}: Shared gave {1:N2}× the requests/s of RoundRobin ({2:N0} vs {3:N0}); the busiest instance answered {4} of the requests with RoundRobin and {5} with Shared.' -f `
                $case.Label, ($data['cluster-shared'].RequestsPerSecond / $data['cluster-rr'].RequestsPerSecond), $data['cluster-shared'].RequestsPerSecond, $data['cluster-rr'].RequestsPerSecond, `
                (Format-TopShare $data['cluster-rr'].Distribution), (Format-TopShare $data['cluster-shared'].Distribution)))
}
foreach ($name in 'ReloadWebSocket', 'ReloadHttp2') {
    if (-not $results.ContainsKey($name)) { continue }
    foreach ($run in $results[$name].Pm2, $results[$name].Cluster, $results[$name].ClusterNoWindow) {
        $notes.Add(('{0}, {1}: {2:N0} sent, {3} lost, {4} connections ended abruptly, {5} resent after a clean end; close codes from the server: {6}; GOAWAYs: {7}; client errors: {8}{9}.' -f `
                    $name, $(if ($run.Tool -eq 'pm2') { 'PM2' } elseif ($run.Window -ge 0) { "Cluster -StabilityWindow $($run.Window)" } else { 'Cluster' }), $run.Sent, $run.Lost, $run.Abrupt, $run.Resent, $(if ($run.Closes) { $run.Closes } else { 'none' }), $run.Goaways, `
                    $(if ($run.Errors) { $run.Errors } else { 'none' }), $(if ($run.ReloadErrors.Count) { "; $($run.ReloadErrors.Count) reload(s) failed: $($run.ReloadErrors | Select-Object -First 1)" })))
    }
}
foreach ($name in 'ReloadClusterKeepAlive', 'ReloadClusterClose', 'ReloadPm2KeepAlive', 'ReloadPm2Close') {
    if (-not $results.ContainsKey($name)) { continue }
    foreach ($message in $results[$name].ReloadErrors | Select-Object -Unique) {
        $notes.Add("A reload failed during $name`: $message")
    }
}
if ($results.ContainsKey('LogTail')) {
    $tail = $results.LogTail
    $small = Get-Median $tail.Times["$($LogTailCounts[1])"]
    $large = Get-Median $tail.Times["$($LogTailCounts[2])"]
    $notes.Add(('Log tail: {0}× the lines took {1:N1}× the time ({2} for {3:N0} lines, {4} for {5:N0}) in a {6} file, PowerShell making the lines into objects included. The host peaked at {7} (it had peaked at {8} before the tails).' -f `
                ($LogTailCounts[2] / $LogTailCounts[1]), ($large / $small), (Format-Ms $small), $LogTailCounts[1], (Format-Ms $large), $LogTailCounts[2], (Format-MB $tail.LogBytes), (Format-MB $tail.HostPeak), (Format-MB $tail.HostPeakBefore)))
}
foreach ($name in $failures.Keys | Sort-Object) {
    $notes.Add("The measure $name failed: $($failures[$name])")
}
$notes.Add("Machine load average (1/5/15 min): $loadBefore before the run, $loadAfter after it, on $([Environment]::ProcessorCount) CPUs. Other work on the machine makes throughput and timings noisier; failed-request counts and memory depend little on it.")

$table = ConvertTo-MarkdownTable $rows
$sections = [System.Collections.Generic.List[string]]::new()
$sections.Add(@"
# Benchmarks: Cluster and PM2 side by side

Generated by ``dotnet pwsh ./build.ps1 -Task Bench`` (bench/Invoke-Benchmark.ps1). Both tools run the same app,
bench/app.js, with $InstanceCount instances on 127.0.0.1, on the same machine, in one run. Ratios are **Cluster ÷ PM2**:
below 1 is better for times and memory, above 1 is better for throughput.

| | |
|---|---|
$(($facts.GetEnumerator() | ForEach-Object { "| $($_.Key) | $($_.Value) |" }) -join "`n")

## Results

$table
"@)
if ($distribution.Count) {
    $sections.Add(@"
## Distribution of requests across instances

Each instance counts the requests it answered; the shares are per process, largest first.

$(ConvertTo-MarkdownTable $distribution)
"@)
}
if ($reloadRuns.Count) {
    $sections.Add(@"
## Reloads under load

$(ConvertTo-MarkdownTable $reloadRuns)
"@)
}
$sections.Add(@"
## How each measure is taken

- **Failed requests**: wrk runs (``-t1 -c16``, bounded by ``-d``) while the app is reloaded $Reloads times back to back
  (``pm2 reload $AppName`` / ``Invoke-ClusterReload $AppName``), then is stopped. Failed = wrk's socket errors
  (connect, read, write, timeout) + responses with an HTTP error status, from wrk's own summary (bench/wrk-summary.lua).
  Run with keep-alive connections, and with ``-H 'Connection: close'`` (a new connection per request).
- **Long-lived connections**: tests/fixtures/drain/app.js (a WebSocket echo server through Node's HTTP server, or an
  HTTP/2 server answering each stream after 20 ms; it never closes a connection itself) under each tool, reloaded
  $LongLivedReloads times while tests/fixtures/drain/client.js runs: each connection sends one message and waits for its
  answer, and reconnects when the server ends the connection. Lost = messages or streams whose connection broke
  abruptly (a reset, a WebSocket end without a close frame, a failed stream) before their answer; one sent as a clean
  end crossed it is sent again and counted as resent, not lost. Reload wall time as above, under that load.
- **Reload wall time**: ``pm2 reload`` as a process (what a user waits for, the CLI's own start included, which
  costs about one ``pm2 jlist``) vs ``Invoke-ClusterReload`` in an open session, with no load. Cluster's reload keeps
  its first new instance up for the stability window (1000 ms by default) before it retires an old one, which PM2
  does not wait; the rows with ``-StabilityWindow 0`` time the same reloads without that wait.
- **Cold start**: nothing running (no PM2 daemon, no Cluster host) -> ``pm2 start app.js -i 2`` (a process; it starts
  the daemon) / ``Start-ClusterApp app.js -Instances 2`` in an open session with the module imported (it starts the
  host) -> the first HTTP 200, polled on a new connection every 5 ms from the start of the command.
- **Control round trip**: ``Get-ClusterApp`` inside one pwsh session vs ``pm2 jlist`` as a new process per call, as a
  user runs each; both with the same app running.
- **Throughput**: wrk ``-t1 -c16``, with keep-alive and with ``-H 'Connection: close'``: $LoadSeconds s of load for each
  of PM2, Cluster RoundRobin and Cluster Shared, given as $LoadRounds runs of ``-d$([math]::Max(1, [int][math]::Round($LoadSeconds / $LoadRounds)))s``
  taken in turns (the order reversed every round), so that other load on the machine falls on all three alike.
  Requests/s = all requests ÷ all run time. wrk and the app share the machine's $([Environment]::ProcessorCount) CPUs.
- **Memory**: resident set size (RSS) of idle apps after a 3 s settle: the PM2 God daemon (its pid file) vs the
  Cluster host (``Get-ClusterHost``) plus its Node primaries (the parent processes of the workers). Worker RSS is
  listed for information only: PM2 loads its agent into every worker, Cluster loads a small drain preload.
- **Primary loss**: bench/primary-loss.js asks the app over a new connection per request from 4 loops, each pausing
  5 ms between requests, kills the process with SIGKILL after 500 ms, and times the first 200 answered by a process
  that was not serving before the kill (bounded at $PrimaryLossBoundSeconds s); failed = requests refused, reset or
  timed out from the kill until 500 ms after that first 200. Cluster: the app's Node primary (the workers' parent),
  killed $PrimaryLossSamples times, each once the app is back online. PM2: its God daemon (its pid file), PM2 started
  again for each kill.
- **Log tail**: one instance of bench/app.js, its log filled to $(Format-MB $LogTailBytes) with 100-byte lines while it
  runs, then ``Get-ClusterAppLog -Instance 0 -Tail N`` in this session (the lines as PowerShell objects included),
  $LogTailSamples times per N. Host RSS is read before the first tail and 2 s after the last one; the peak is the
  host's VmHWM (/proc), which covers its whole life.

## Notes

$(($notes | ForEach-Object { "- $_" }) -join "`n")
"@)
$report = ($sections -join "`n`n") + "`n"

Write-Host ''
Write-Host $table
if ($distribution.Count) { Write-Host ''; Write-Host (ConvertTo-MarkdownTable $distribution) }
if ($reloadRuns.Count) { Write-Host ''; Write-Host (ConvertTo-MarkdownTable $reloadRuns) }
foreach ($note in $notes) { Write-Host "- $note" }
if ($Only.Count -gt 0) {
    Write-Step "Ran $($Only -join ', ') only (-Only): no report written"
}
elseif ($ReportPath) {
    $full = [IO.Path]::GetFullPath($ReportPath)
    $null = New-Item -ItemType Directory -Force -Path (Split-Path $full)
    # The fleet section is bench/Measure-FleetRollout.ps1's (it needs an sshd); it stays as that script last wrote it.
    $previous = if (Test-Path $full) { Get-Content -Raw $full } else { '' }
    if ($previous -match '(?s)<!-- fleet -->.*<!-- /fleet -->') { $report += "`n" + $Matches[0] + "`n" }
    Set-Content -Path $full -Value $report -Encoding utf8NoBOM -NoNewline
    Write-Step "Wrote $full"
}
Write-Step 'Benchmark finished'
if ($failures.Count) {
    throw "$($failures.Count) measure(s) failed: $($failures.Keys -join ', '). The report says why."
}

#endregion
