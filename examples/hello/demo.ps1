#Requires -Version 7.0
<#
.SYNOPSIS
    Runs examples/hello/app.js as a cluster, sends it requests, reloads it without downtime and removes it.
.DESCRIPTION
    build.ps1 -Task Demo runs this in a fresh 'pwsh -NoProfile' against the built module, with a temporary
    CLUSTER_HOME and a free port. The app and the host are removed at the end, also when a step fails.
#>
[CmdletBinding()]
param(
    [string] $ModulePath = (Join-Path $PSScriptRoot '../../out/Cluster/Cluster.psd1'),
    [string] $ClusterHome,
    [int] $Port = 3000
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

if ($ClusterHome) { $env:CLUSTER_HOME = $ClusterHome }
Import-Module $ModulePath

function Show-Step([string] $Text) {
    Write-Host ''
    Write-Host "--- $Text"
}

# Sends $Count requests, each on a new connection, and shows which process answered.
function Send-Requests([int] $Count) {
    $uri = "http://127.0.0.1:$Port/"
    for ($i = 1; $i -le $Count; $i++) {
        $answer = Invoke-RestMethod -Uri $uri -DisableKeepAlive -TimeoutSec 5
        Write-Host ("request {0}: pid {1}, instance {2}: {3}" -f $i, $answer.pid, $answer.instance, $answer.message)
    }
}

try {
    Show-Step "Start-ClusterApp ./examples/hello/app.js -Name hello -Instances 0 (one instance per CPU, port $Port)"
    $null = Start-ClusterApp (Join-Path $PSScriptRoot 'app.js') -Name hello -Instances 0 -Environment @{ PORT = "$Port" }

    Show-Step 'Get-ClusterApp hello'
    Get-ClusterApp hello | Format-Table | Out-Host
    (Get-ClusterApp hello).Instances | Format-Table | Out-Host

    Show-Step 'Requests (Connection: close, so the instances take turns)'
    Send-Requests 8

    Show-Step 'Invoke-ClusterReload hello (one instance at a time; the port keeps answering)'
    Invoke-ClusterReload hello | Out-Host
    (Get-ClusterApp hello).Instances | Format-Table | Out-Host

    Show-Step 'Requests after the reload (new pids)'
    Send-Requests 8
}
finally {
    Show-Step 'Remove-ClusterApp hello -Confirm:$false; Stop-ClusterHost'
    $cleanupFailed = $false
    try {
        # Also after a failed start: the app may be registered even if it never became ready.
        if (Get-ClusterApp hello -ErrorAction SilentlyContinue) {
            Remove-ClusterApp hello -Confirm:$false
        }
    }
    catch {
        Write-Warning "Could not remove the app 'hello': $_"
        $cleanupFailed = $true
    }
    try {
        Stop-ClusterHost -Confirm:$false
    }
    catch {
        Write-Warning "Could not stop the Cluster host: $_"
        $cleanupFailed = $true
    }
}
if ($cleanupFailed) { exit 1 }
