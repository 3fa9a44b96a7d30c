#Requires -Version 7.0
<#
.SYNOPSIS
    Soak: many reloads under a bounded keep-alive load, then checks that no request failed, that the host's
    memory stayed flat and that nothing was left running.
.DESCRIPTION
    Runs in its own CLUSTER_HOME with the module at -ModulePath. Reloads alternate between plain and graceful.
    Exits 1 when a request failed, when the host grew by more than -MaxHostGrowthMB, or when a process was left.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [ValidateRange(1, 10000)] [int] $Reloads = 100,
    [ValidateRange(1, 64)] [int] $Instances = 2,
    [ValidateRange(1, 64)] [int] $Concurrency = 8,
    [ValidateRange(0, 1000)] [int] $WarmUpReloads = 20,
    [double] $MaxHostGrowthMB = 5
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$repo = Split-Path $PSScriptRoot -Parent
$app = Join-Path $repo 'tests/fixtures/reload/app.js'
$loadClient = Join-Path $repo 'tests/fixtures/reload/load.js'
$work = Join-Path ([IO.Path]::GetTempPath()) ('cluster-soak-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
New-Item -ItemType Directory -Path $work | Out-Null
$env:CLUSTER_HOME = Join-Path $work 'home'
Import-Module $ModulePath

function Get-FreePort {
    $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
    $listener.Start()
    try { $listener.LocalEndpoint.Port } finally { $listener.Stop() }
}

function Get-RssMB([int] $ProcessId) {
    [math]::Round((Get-Process -Id $ProcessId).WorkingSet64 / 1MB, 1)
}

$port = Get-FreePort
$seen = [System.Collections.Generic.HashSet[int]]::new()
$load = $null
try {
    $started = Start-ClusterApp $app -Name soak -Instances $Instances -Environment @{ PORT = "$port" }
    $started.Instances.Pid | ForEach-Object { [void] $seen.Add($_) }
    $hostInfo = Get-ClusterHost
    $primaryPid = (Get-Process -Id $started.Instances[0].Pid).Parent.Id

    $stopFile = Join-Path $work 'stop'
    $readyFile = Join-Path $work 'ready'
    $loadOutput = Join-Path $work 'load.json'
    $maxSeconds = [math]::Max(120, $Reloads * 10)
    $load = Start-Process node -PassThru -NoNewWindow -RedirectStandardOutput $loadOutput -ArgumentList @(
        $loadClient, '--port', $port, '--connection', 'keep-alive', '--concurrency', $Concurrency,
        '--stop', $stopFile, '--ready', $readyFile, '--max-seconds', $maxSeconds, '--max-requests', 1000000000)
    $deadline = [DateTime]::UtcNow.AddSeconds(30)
    while (-not (Test-Path $readyFile)) {
        if ([DateTime]::UtcNow -gt $deadline) { throw 'The load client did not get going within 30 seconds.' }
        Start-Sleep -Milliseconds 100
    }

    # Warm up, so the baseline is the host at work (its heap and thread pool grown to their working size)
    # rather than the host just started.
    1..$WarmUpReloads | ForEach-Object { Invoke-ClusterReload soak | Out-Null }
    $hostBefore = Get-RssMB $hostInfo.Pid
    $primaryBefore = Get-RssMB $primaryPid
    $clock = [Diagnostics.Stopwatch]::StartNew()
    for ($i = 1; $i -le $Reloads; $i++) {
        Write-Progress -Activity 'Soak' -Status "Reload $i of $Reloads" -PercentComplete (100 * $i / $Reloads)
        $reloaded = if ($i % 2) { Invoke-ClusterReload soak } else { Invoke-ClusterGracefulReload soak -GracefulTimeout 2000 }
        $reloaded.Instances.Pid | ForEach-Object { [void] $seen.Add($_) }
    }
    Write-Progress -Activity 'Soak' -Completed
    $elapsed = $clock.Elapsed
    [GC]::Collect()
    $hostAfter = Get-RssMB $hostInfo.Pid
    $primaryAfter = Get-RssMB $primaryPid

    New-Item -ItemType File -Path $stopFile | Out-Null
    $load.WaitForExit(30000) | Out-Null
    $result = Get-Content $loadOutput -Raw | ConvertFrom-Json

    $final = Get-ClusterApp soak
    Remove-ClusterApp soak -Confirm:$false
    Stop-ClusterHost -Confirm:$false
    Start-Sleep -Milliseconds 500
    $left = @($seen + $primaryPid + $hostInfo.Pid | Where-Object { Get-Process -Id $_ -ErrorAction SilentlyContinue })

    $hostGrowth = [math]::Round($hostAfter - $hostBefore, 1)
    $report = @"
| measure | value |
|---|---|
| reloads (plain and graceful, alternating) | $Reloads in $([math]::Round($elapsed.TotalSeconds, 1)) s |
| requests answered / failed | $($result.ok) / $($result.failed) |
| host RSS before / after | $hostBefore MB / $hostAfter MB ($hostGrowth MB) |
| Node primary RSS before / after | $primaryBefore MB / $primaryAfter MB |
| restarts counted per instance | $(($final.Instances | ForEach-Object Restarts) -join ', ') |
| processes left after Stop-ClusterHost | $($left.Count) |
"@
    Write-Output $report
    $problems = @()
    if ($result.failed -gt 0) { $problems += "$($result.failed) requests failed: $($result.errors | ConvertTo-Json -Compress)" }
    if ($hostGrowth -gt $MaxHostGrowthMB) { $problems += "the host grew by $hostGrowth MB (more than $MaxHostGrowthMB MB)" }
    if ($left.Count -gt 0) { $problems += "processes left running: $($left -join ', ')" }
    if ($problems) {
        Write-Error ("Soak failed: " + ($problems -join '; ')) -ErrorAction Continue
        exit 1
    }
    Write-Output 'Soak passed: no failed request, the host stayed flat, nothing was left running.'
}
finally {
    if ($load -and -not $load.HasExited) { $load.Kill() }
    Get-ClusterApp -ErrorAction SilentlyContinue | Remove-ClusterApp -Confirm:$false -ErrorAction SilentlyContinue
    Stop-ClusterHost -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}
