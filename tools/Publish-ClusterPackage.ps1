#Requires -Version 7.2
<#
.SYNOPSIS
    Publishes a module folder with PSResourceGet to a new local repository and moves the .nupkg it writes to
    OutputPath. build.ps1 -Task Package runs this in a fresh pwsh (with its PSResourceGet settings in a
    temporary folder); the repository it registers is unregistered again whatever happens.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModuleFolder,
    [Parameter(Mandatory)] [string] $OutputPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$id = [guid]::NewGuid().ToString('n')
$repositoryName = "ClusterBuild-$($id.Substring(0, 12))"
$repositoryFolder = Join-Path ([IO.Path]::GetTempPath()) "cluster-repository-$id"
$null = New-Item -ItemType Directory -Path $repositoryFolder

Register-PSResourceRepository -Name $repositoryName -Uri $repositoryFolder -Trusted
try {
    Publish-PSResource -Path $ModuleFolder -Repository $repositoryName
    $written = @(Get-ChildItem -Path $repositoryFolder -Filter '*.nupkg' -File)
    if ($written.Count -ne 1) {
        throw "Publish-PSResource wrote $($written.Count) packages to $repositoryFolder; expected one."
    }
    Move-Item $written[0].FullName $OutputPath -Force
}
finally {
    Unregister-PSResourceRepository -Name $repositoryName -ErrorAction Continue
    Remove-Item $repositoryFolder -Recurse -Force -ErrorAction Continue
}
