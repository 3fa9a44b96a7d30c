@{
    # build.ps1 replaces this placeholder with the <Version> from Directory.Build.props (the one version source).
    ModuleVersion         = '0.0.0'
    RootModule            = 'Cluster.dll'
    GUID                  = '26af6b61-02a5-4d3f-96db-cfbbb2bd8486'
    Author                = 'Cluster contributors'
    CompanyName           = 'Cluster contributors'
    Copyright             = '(c) Cluster contributors. All rights reserved.'
    Description           = 'Runs Node.js applications as zero-downtime process clusters from PowerShell: one instance per CPU sharing a port, rolling and graceful reloads, restarts and logs, with typed objects for every app and instance.'
    CompatiblePSEditions  = @('Desktop', 'Core')
    PowerShellVersion     = '5.1'
    FormatsToProcess      = @('Cluster.format.ps1xml')
    TypesToProcess        = @('Cluster.types.ps1xml')
    CmdletsToExport       = @(
        'Start-ClusterApp'
        'Get-ClusterApp'
        'Stop-ClusterApp'
        'Restart-ClusterApp'
        'Remove-ClusterApp'
        'Get-ClusterAppLog'
        'Invoke-ClusterReload'
        'Invoke-ClusterGracefulReload'
        'Set-ClusterApp'
        'Get-ClusterHost'
        'Stop-ClusterHost'
        'Sync-ClusterApp'
        'Export-ClusterApp'
        'Send-ClusterSignal'
        'Send-ClusterMessage'
        'Reset-ClusterApp'
    )
    FunctionsToExport     = @()
    AliasesToExport       = @()
    VariablesToExport     = @()
    PrivateData           = @{
        PSData = @{
            Tags       = @('nodejs', 'cluster', 'pm2', 'zero-downtime', 'reload', 'process-manager', 'Linux', 'Windows')
            ProjectUri = 'https://github.com/cluster-ps/Cluster'
            LicenseUri = 'https://github.com/cluster-ps/Cluster/blob/main/LICENSE'
        }
    }
}
