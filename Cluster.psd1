@{
    # build.ps1 replaces this placeholder with the <Version> from Directory.Build.props (the one version source).
    ModuleVersion         = '0.0.0'
    RootModule            = 'Cluster.dll'
    GUID                  = '26af6b61-02a5-4d3f-96db-cfbbb2bd8486'
    Author                = 'Cluster contributors'
    CompanyName           = 'Cluster contributors'
    Copyright             = 'Copyright (c) 2026 The Cluster authors. MIT License.'
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
        'Clear-ClusterAppLog'
        'Invoke-ClusterReload'
        'Invoke-ClusterGracefulReload'
        'Set-ClusterApp'
        'Get-ClusterHost'
        'Stop-ClusterHost'
        'Watch-ClusterApp'
        'Sync-ClusterApp'
        'Export-ClusterApp'
        'Register-ClusterStartup'
        'Unregister-ClusterStartup'
    )
    FunctionsToExport     = @()
    AliasesToExport       = @()
    VariablesToExport     = @()
    HelpInfoURI           = 'https://github.com/cluster-ps/Cluster/tree/main/docs/en-US'
    PrivateData           = @{
        PSData = @{
            Tags       = @('nodejs', 'cluster', 'pm2', 'zero-downtime', 'reload', 'process-manager', 'Linux', 'Windows', 'macOS')
            ProjectUri = 'https://github.com/cluster-ps/Cluster'
            LicenseUri = 'https://github.com/cluster-ps/Cluster/blob/main/LICENSE'
            ReleaseNotes = 'How the module works, its files and its environment variables: Get-Help about_Cluster, or https://github.com/cluster-ps/Cluster/blob/main/docs/en-US/about_Cluster.help.md'
        }
    }
}
