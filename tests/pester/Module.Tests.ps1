#Requires -Version 7.0
# The shape of the built module: its manifest, its files, and that it loads. Run by build.ps1 -Task Test,
# which sets CLUSTER_MODULE_PATH to out/Cluster/Cluster.psd1.

BeforeAll {
    if (-not $env:CLUSTER_MODULE_PATH -or -not (Test-Path $env:CLUSTER_MODULE_PATH)) {
        throw 'Set CLUSTER_MODULE_PATH to the built Cluster.psd1 (build.ps1 -Task Test does).'
    }
    $script:ManifestPath = $env:CLUSTER_MODULE_PATH
    $script:ModuleFolder = Split-Path -Parent $ManifestPath
    $script:Manifest = Import-PowerShellDataFile $ManifestPath
    $script:ExpectedCmdlets = @(
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
        'Send-ClusterSignal'
        'Send-ClusterMessage'
        'Reset-ClusterApp'
    )

    # Runs a command in a fresh 'pwsh -NoProfile'. Under 'dotnet pwsh' this process is dotnet itself.
    function Invoke-FreshPwsh([string] $Command) {
        $path = [Environment]::ProcessPath
        [string[]] $prefix = if ([IO.Path]::GetFileNameWithoutExtension($path) -eq 'pwsh') { @() } else { @(Join-Path $PSHOME 'pwsh.dll') }
        $output = & $path @prefix -NoProfile -NonInteractive -Command $Command 2>&1
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = ($output | Out-String).Trim() }
    }
}

Describe 'The built module manifest' {
    It 'passes Test-ModuleManifest' {
        { Test-ModuleManifest -Path $ManifestPath -ErrorAction Stop } | Should -Not -Throw
    }

    It 'carries the version from Directory.Build.props' {
        $props = [xml] (Get-Content -Raw (Join-Path $PSScriptRoot '../../Directory.Build.props'))
        $Manifest.ModuleVersion | Should -Be $props.SelectSingleNode('/Project/PropertyGroup/Version').InnerText
    }

    It 'declares exactly the expected cmdlets' {
        @($Manifest.CmdletsToExport) | Sort-Object | Should -Be ($ExpectedCmdlets | Sort-Object)
    }

    It 'exports no functions, aliases or variables' {
        @($Manifest.FunctionsToExport).Count | Should -Be 0
        @($Manifest.AliasesToExport).Count | Should -Be 0
        @($Manifest.VariablesToExport).Count | Should -Be 0
    }

    It 'targets Windows PowerShell 5.1 and PowerShell 7' {
        $Manifest.CompatiblePSEditions | Should -Be @('Desktop', 'Core')
        $Manifest.PowerShellVersion | Should -Be '5.1'
    }

    It 'links the licence, the project, the online help and about_Cluster' {
        $data = $Manifest.PrivateData.PSData
        $data.LicenseUri | Should -Match '^https://.+/LICENSE$'
        $data.ProjectUri | Should -Match '^https://'
        $Manifest.HelpInfoURI | Should -Match '^https://'
        $data.ReleaseNotes | Should -Match 'about_Cluster'
        $Manifest.Copyright | Should -Match 'MIT'
    }

    It 'shares no command name with the FailoverClusters module of Windows Server' {
        $failoverClusters = Get-Content (Join-Path $PSScriptRoot '../fixtures/module/failoverclusters-commands.txt') | Where-Object { $_ -and $_ -notlike '#*' }
        $failoverClusters.Count | Should -BeGreaterThan 100
        $failoverClusters | Should -Contain 'Get-ClusterLog' -Because 'the list is the one the clash was found in'
        @($Manifest.CmdletsToExport | Where-Object { $_ -in $failoverClusters }) | Should -BeNullOrEmpty
    }
}

Describe 'The built module folder' {
    It 'holds every file the manifest names' {
        foreach ($file in @($Manifest.RootModule) + @($Manifest.FormatsToProcess) + @($Manifest.TypesToProcess)) {
            Join-Path $ModuleFolder $file | Should -Exist
        }
    }

    It 'does not ship System.Management.Automation.dll' {
        Get-ChildItem -Path $ModuleFolder -Recurse -Filter 'System.Management.Automation.dll' | Should -BeNullOrEmpty
    }

    It 'ships the MIT licence' {
        $license = Join-Path $ModuleFolder 'LICENSE'
        $license | Should -Exist
        Get-Content -Raw $license | Should -Match 'MIT License'
    }

    It 'ships the Node primary and the drain preload' {
        Join-Path $ModuleFolder 'primary.js' | Should -Exist
        Join-Path $ModuleFolder 'drain.js' | Should -Exist
        Join-Path $ModuleFolder 'health.js' | Should -Exist
    }

    It 'ships a host for this platform, or a framework-dependent one' {
        $rid = [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier
        $native = Join-Path $ModuleFolder "hosts/$rid/$($IsWindows ? 'cluster-host.exe' : 'cluster-host')"
        $frameworkDependent = Join-Path $ModuleFolder 'hosts/portable/cluster-host.dll'
        ((Test-Path $native) -or (Test-Path $frameworkDependent)) | Should -BeTrue
    }
}

Describe 'Importing the built module' {
    It 'imports in a fresh process' {
        $result = Invoke-FreshPwsh "Import-Module '$ManifestPath' -ErrorAction Stop; (Get-Module Cluster).Version.ToString()"
        $result.Output | Should -Be $Manifest.ModuleVersion
        $result.ExitCode | Should -Be 0
    }

    It 'exports only commands the manifest declares' {
        $module = Import-Module $ManifestPath -Force -PassThru -ErrorAction Stop
        try {
            foreach ($command in Get-Command -Module Cluster) {
                $command.Name | Should -BeIn $ExpectedCmdlets
            }
            $module.ExportedFunctions.Count | Should -Be 0
        }
        finally {
            Remove-Module Cluster -ErrorAction SilentlyContinue
        }
    }
}
