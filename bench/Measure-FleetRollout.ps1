#Requires -Version 7.0
<#
.SYNOPSIS
    Measures a fleet rollout over PowerShell remoting on this machine and writes it to docs/benchmarks.md.
.DESCRIPTION
    Starts an sshd of its own on 127.0.0.1 with a PowerShell subsystem (tests/pester/FleetHelpers.psm1) and
    -Machines SSH sessions to it, each with its own CLUSTER_HOME, so each is a machine with its own Cluster
    host. bench/app.js runs with -Instances instances on each. Then measures, -Samples times each (medians,
    with the slowest): Get-ClusterApp -Session over every machine, Invoke-ClusterReload -Session one machine
    after the other (the default), and with -MaxParallelMachines set to the machine count. The machines share
    this machine's CPUs, so a parallel rollout here is slower than on separate machines. Needs sshd
    (openssh-server). Every process it starts is stopped before it returns.
.EXAMPLE
    ./bench/Measure-FleetRollout.ps1 -ModulePath ./out/Cluster/Cluster.psd1
#>
[CmdletBinding()]
param(
    # The built module to measure (out/Cluster/Cluster.psd1).
    [Parameter(Mandatory)] [string] $ModulePath,

    [ValidateRange(1, 10)] [int] $Machines = 3,

    [ValidateRange(1, 16)] [int] $Instances = 2,

    [ValidateRange(1, 50)] [int] $Samples = 5,

    # The report whose fleet section (between <!-- fleet --> and <!-- /fleet -->) is replaced, or added at its
    # end; nothing is written when empty.
    [string] $ReportPath = (Join-Path $PSScriptRoot '../docs/benchmarks.md')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$ProgressPreference = 'SilentlyContinue'

$env:CLUSTER_MODULE_PATH = (Resolve-Path $ModulePath).Path
Import-Module (Join-Path $PSScriptRoot '../tests/pester/TestHelpers.psm1') -Force
Import-Module (Join-Path $PSScriptRoot '../tests/pester/FleetHelpers.psm1') -Force
Import-ClusterModule
$moduleRoot = Split-Path -Parent (Split-Path -Parent $env:CLUSTER_MODULE_PATH)
$work = New-TestClusterHome

function Measure-Median {
    param([Parameter(Mandatory)] [scriptblock] $Body)
    $times = foreach ($i in 1..$Samples) {
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $null = & $Body
        $clock.Elapsed.TotalMilliseconds
    }
    $sorted = @($times | Sort-Object)
    $median = if ($sorted.Count % 2) { $sorted[[int][math]::Floor($sorted.Count / 2)] } else { ($sorted[$sorted.Count / 2 - 1] + $sorted[$sorted.Count / 2]) / 2 }
    [pscustomobject]@{ Median = $median; Max = $sorted[-1] }
}

$ssh = $null
$sessions = @()
try {
    $ssh = Start-TestSshServer -Folder (Join-Path $work 'ssh')
    $sessions = @(1..$Machines | ForEach-Object { New-TestMachine -Ssh $ssh -Name "m$_" -ModulePath $moduleRoot })
    foreach ($session in $sessions) {
        $port = Get-FreePort
        Invoke-Command -Session $session -ArgumentList (Join-Path $PSScriptRoot 'app.js'), $Instances, $port -ScriptBlock {
            param($script, $instances, $port)
            $null = Start-ClusterApp -Path $script -Name bench -Instances $instances -Environment @{ PORT = "$port" } -ErrorAction Stop
        }
    }
    # One rollout before measuring: the first remote call of a session loads the module's help and formats.
    $null = Invoke-ClusterReload -Session $sessions -Name bench

    $read = Measure-Median { Get-ClusterApp -Session $sessions -Name bench }
    $rolling = Measure-Median { Invoke-ClusterReload -Session $sessions -Name bench }
    $parallel = Measure-Median { Invoke-ClusterReload -Session $sessions -Name bench -MaxParallelMachines $Machines }
    $local = Measure-Median { Invoke-Command -Session $sessions[0] { Invoke-ClusterReload -Name bench } }

    $cpus = [Environment]::ProcessorCount
    $load = if (Test-Path /proc/loadavg) { ((Get-Content /proc/loadavg) -split ' ')[0..2] -join ' ' } else { 'unknown' }
    $section = @(
        '<!-- fleet -->'
        '## Fleet rollout'
        ''
        "Measured by bench/Measure-FleetRollout.ps1 on $(Get-Date -AsUTC -Format 'yyyy-MM-dd HH:mm') UTC, Cluster $((Get-Module Cluster).Version): $Machines machines x $Instances instances of"
        "bench/app.js, each machine an SSH session to 127.0.0.1 with its own CLUSTER_HOME (so its own host), all sharing"
        "this machine's $cpus CPUs (load average $load at the end). No load on the apps; median (slowest) of $Samples."
        ''
        '| Measure | Time, median (max) |'
        '|---|---|'
        '| Get-ClusterApp -Session, {0} machines at once | {1:N0} ms ({2:N0} ms) |' -f $Machines, $read.Median, $read.Max
        '| Invoke-ClusterReload -Session, {0} machines one after the other (the default) | {1:N0} ms ({2:N0} ms) |' -f $Machines, $rolling.Median, $rolling.Max
        '| Invoke-ClusterReload -Session -MaxParallelMachines {0} | {1:N0} ms ({2:N0} ms) |' -f $Machines, $parallel.Median, $parallel.Max
        '| One machine''s Invoke-ClusterReload, run through Invoke-Command (for comparison) | {0:N0} ms ({1:N0} ms) |' -f $local.Median, $local.Max
        ''
        'A rolling rollout costs about the sum of its machines'' reloads: each machine is checked for the module, then'
        'reloaded while the others wait. The parallel rollout here runs every machine''s reload on the same 2 CPUs.'
        '<!-- /fleet -->'
    ) -join "`n"
    Write-Host $section
    if ($ReportPath) {
        $full = [IO.Path]::GetFullPath($ReportPath)
        $previous = if (Test-Path $full) { Get-Content -Raw $full } else { '' }
        $report = if ($previous -match '(?s)<!-- fleet -->.*<!-- /fleet -->') {
            $previous.Replace($Matches[0], $section)
        }
        else {
            $previous.TrimEnd() + "`n`n" + $section + "`n"
        }
        Set-Content -Path $full -Value $report -Encoding utf8NoBOM -NoNewline
    }
}
finally {
    foreach ($session in $sessions) { Remove-TestMachine $session }
    if ($ssh) { Stop-TestSshServer $ssh }
    Remove-TestClusterHome $work
}
