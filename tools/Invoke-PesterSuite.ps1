#Requires -Version 7.0
<#
.SYNOPSIS
    Runs the Pester suite and writes its counts to a JSON file. build.ps1 -Task Test starts this in a fresh
    'pwsh -NoProfile' with CLUSTER_MODULE_PATH set to the built Cluster.psd1.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $PesterPath,
    [Parameter(Mandatory)] [string] $TestPath,
    [Parameter(Mandatory)] [string] $ResultPath,
    [Parameter(Mandatory)] [string] $SummaryPath
)

# No Set-StrictMode and no $ErrorActionPreference here: the tests run in scopes below this script and would
# inherit them. They get the defaults of a fresh session.
Import-Module $PesterPath -Force -ErrorAction Stop

$configuration = New-PesterConfiguration
$configuration.Run.Path = $TestPath
$configuration.Run.PassThru = $true
$configuration.Run.Exit = $false
$configuration.Output.Verbosity = 'Detailed'
$configuration.TestResult.Enabled = $true
$configuration.TestResult.OutputFormat = 'NUnitXml'
$configuration.TestResult.OutputPath = $ResultPath

$result = Invoke-Pester -Configuration $configuration

# No test files: Pester reports that and returns no run object.
$ran = $null -ne $result -and $result.PSObject.Properties['PassedCount']
$failed = if ($ran) { $result.FailedCount + $result.FailedContainersCount } else { 0 }
$note = $null
if ($ran -and $result.FailedContainersCount) {
    $note = "$($result.FailedContainersCount) test file(s) failed to run"
}
# A failed BeforeAll fails the tests under it, but a failed AfterAll fails no test: count it once.
if ($ran -and $failed -eq 0 -and $result.Result -eq 'Failed') {
    $failed = 1
    $note = 'a setup or teardown block failed'
}

[ordered]@{
    Passed  = if ($ran) { $result.PassedCount } else { 0 }
    Failed  = $failed
    Skipped = if ($ran) { $result.SkippedCount } else { 0 }
    Note    = $note
} | ConvertTo-Json | Set-Content -Path $SummaryPath -Encoding utf8 -ErrorAction Stop
