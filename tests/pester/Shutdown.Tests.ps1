#Requires -Version 7.0
# Stopping with the 'shutdown' message end to end: Stop-ClusterApp, Restart-ClusterApp and Remove-ClusterApp with
# -ShutdownWithMessage send it to every instance (cluster and fork mode) and give it the graceful timeout; -KillTimeout
# sets how long a plain stop waits after SIGINT. The marker fixture notes 'shutdown' and SIGINT in files, works on
# for 2.5 s (longer than the default kill timeout of 1.6 s) and notes that it finished. Real host, real Node apps on
# 127.0.0.1. Run by build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Marker = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/shutdown/marker.js')).Path

    # Starts the marker fixture with its own markers folder. Fork-mode instances share no port: they say 'online'.
    function Start-MarkerApp {
        param([Parameter(Mandatory)] [string] $Name, [Parameter(Mandatory)] [string] $Mode, [int] $WorkMs = 2500)
        $markers = Join-Path $TestHome "$Name-markers"
        New-Item -ItemType Directory -Path $markers -Force | Out-Null
        $environment = @{ MARKERS = $markers; WORK_MS = "$WorkMs" }
        if ($Mode -eq 'Fork') { $environment.PORT = $null }
        $app = Start-FixtureApp -Path $Marker -Name $Name -Instances 2 -Environment $environment -StartParameters @{ Mode = $Mode }
        $app.Status | Should -Be 'Online'
        Wait-Until { @($app.Instances | Where-Object { -not (Test-Marker $markers $_.Pid 'ready') }).Count -eq 0 } -TimeoutSeconds 10 -Because "the instances of '$Name' to listen for 'shutdown' and SIGINT"
        $app | Add-Member -NotePropertyName Markers -NotePropertyValue $markers -PassThru
    }

    function Test-Marker([string] $Folder, [int] $Id, [string] $Kind) { Test-Path (Join-Path $Folder "$Id.$Kind") }

    function Invoke-Stopping {
        param([Parameter(Mandatory)] [string] $Command, [Parameter(Mandatory)] [string] $Name, [hashtable] $Parameters = @{})
        $confirm = if ($Command -eq 'Remove-ClusterApp') { @{ Confirm = $false } } else { @{} }
        & $Command -Name $Name @Parameters @confirm -ErrorAction Stop
    }

    function Remove-AllApps {
        Get-ClusterApp -ErrorAction SilentlyContinue | Remove-ClusterApp -Confirm:$false -ErrorAction SilentlyContinue
    }
}

AfterAll {
    Remove-TestClusterHome -Path $TestHome
}

Describe '-ShutdownWithMessage' {
    AfterEach { Remove-AllApps }

    It '<Command> sends a <Mode>-mode app''s instances ''shutdown'' and gives them the graceful timeout to finish' -ForEach @(
        @{ Command = 'Stop-ClusterApp'; Mode = 'Cluster' }
        @{ Command = 'Stop-ClusterApp'; Mode = 'Fork' }
        @{ Command = 'Restart-ClusterApp'; Mode = 'Cluster' }
        @{ Command = 'Restart-ClusterApp'; Mode = 'Fork' }
        @{ Command = 'Remove-ClusterApp'; Mode = 'Cluster' }
        @{ Command = 'Remove-ClusterApp'; Mode = 'Fork' }
    ) {
        $app = Start-MarkerApp -Name "$($Command.Split('-')[0].ToLower())-$($Mode.ToLower())" -Mode $Mode
        $oldPids = @($app.Instances | ForEach-Object Pid)

        Invoke-Stopping -Command $Command -Name $app.Name -Parameters @{ ShutdownWithMessage = $true; GracefulTimeout = 10000 }

        foreach ($oldPid in $oldPids) {
            Test-Marker $app.Markers $oldPid 'shutdown' | Should -BeTrue -Because "instance pid $oldPid gets the 'shutdown' message"
            Test-Marker $app.Markers $oldPid 'sigint' | Should -BeFalse -Because 'a stop with the message sends no signal first'
            Test-Marker $app.Markers $oldPid 'done' | Should -BeTrue -Because "instance pid $oldPid is given the graceful timeout, longer than its 2.5 s of work"
            Test-ProcessRunning -Id $oldPid | Should -BeFalse
        }
        $after = @(Get-ClusterApp | Where-Object Name -EQ $app.Name)
        switch ($Command) {
            'Stop-ClusterApp' { $after[0].Status | Should -Be 'Stopped' }
            'Restart-ClusterApp' {
                $after[0].Status | Should -Be 'Online'
                $after[0].Instances.Pid | ForEach-Object { $_ | Should -Not -BeIn $oldPids }
            }
            'Remove-ClusterApp' { $after | Should -BeNullOrEmpty }
        }
    }

    It 'sends SIGINT to a <Mode>-mode instance still working when a short graceful timeout passes, and kills it after the kill timeout' -ForEach @(
        @{ Mode = 'Cluster' }
        @{ Mode = 'Fork' }
    ) {
        # 10 s of work: longer than the graceful timeout and the kill timeout (1600 ms) together.
        $app = Start-MarkerApp -Name "short-$($Mode.ToLower())" -Mode $Mode -WorkMs 10000
        $oldPids = @($app.Instances | ForEach-Object Pid)

        Stop-ClusterApp -Name $app.Name -ShutdownWithMessage -GracefulTimeout 300

        foreach ($oldPid in $oldPids) {
            Test-Marker $app.Markers $oldPid 'shutdown' | Should -BeTrue
            Test-Marker $app.Markers $oldPid 'sigint' | Should -BeTrue -Because 'the graceful timeout passed with the instance still running'
            [long] (Get-Content (Join-Path $app.Markers "$oldPid.sigint")) | Should -BeGreaterOrEqual ([long] (Get-Content (Join-Path $app.Markers "$oldPid.shutdown"))) -Because "SIGINT comes after 'shutdown'"
            Test-ProcessRunning -Id $oldPid | Should -BeFalse
            Test-Marker $app.Markers $oldPid 'done' | Should -BeFalse -Because 'it was killed once the kill timeout had passed after SIGINT, before its work was done'
        }
    }

    It 'takes the graceful timeout from PM2_GRACEFUL_TIMEOUT in the session when -GracefulTimeout is left out' {
        $app = Start-MarkerApp -Name session-timeout -Mode Cluster
        $oldPids = @($app.Instances | ForEach-Object Pid)
        $env:PM2_GRACEFUL_TIMEOUT = '10000'
        try {
            Stop-ClusterApp -Name $app.Name -ShutdownWithMessage
        }
        finally {
            $env:PM2_GRACEFUL_TIMEOUT = $null
        }

        foreach ($oldPid in $oldPids) {
            Test-Marker $app.Markers $oldPid 'done' | Should -BeTrue -Because 'PM2_GRACEFUL_TIMEOUT=10000 gave it time to finish'
        }
    }

    It 'is left out by a plain stop, which signals SIGINT and kills after the default kill timeout' {
        $app = Start-MarkerApp -Name plain -Mode Fork
        $oldPids = @($app.Instances | ForEach-Object Pid)

        Stop-ClusterApp -Name $app.Name

        foreach ($oldPid in $oldPids) {
            Test-Marker $app.Markers $oldPid 'shutdown' | Should -BeFalse
            Test-Marker $app.Markers $oldPid 'sigint' | Should -BeTrue
            Test-Marker $app.Markers $oldPid 'done' | Should -BeFalse -Because 'the default kill timeout (1600 ms) is shorter than its work'
            Test-ProcessRunning -Id $oldPid | Should -BeFalse
        }
    }

    It 'lets -KillTimeout give a plain <Command> longer after SIGINT' -ForEach @(
        @{ Command = 'Stop-ClusterApp' }
        @{ Command = 'Restart-ClusterApp' }
        @{ Command = 'Remove-ClusterApp' }
    ) {
        $app = Start-MarkerApp -Name "kill-$($Command.Split('-')[0].ToLower())" -Mode Fork
        $oldPids = @($app.Instances | ForEach-Object Pid)

        Invoke-Stopping -Command $Command -Name $app.Name -Parameters @{ KillTimeout = 10000 }

        foreach ($oldPid in $oldPids) {
            Test-Marker $app.Markers $oldPid 'sigint' | Should -BeTrue
            Test-Marker $app.Markers $oldPid 'done' | Should -BeTrue -Because 'a kill timeout of 10 s gave it time to finish'
        }
    }

    It 'changes nothing with -WhatIf (<Command>)' -ForEach @(
        @{ Command = 'Stop-ClusterApp' }
        @{ Command = 'Restart-ClusterApp' }
        @{ Command = 'Remove-ClusterApp' }
    ) {
        $app = Start-MarkerApp -Name "whatif-$($Command.Split('-')[0].ToLower())" -Mode Cluster

        Invoke-Stopping -Command $Command -Name $app.Name -Parameters @{ ShutdownWithMessage = $true; WhatIf = $true }

        $after = Get-ClusterApp -Name $app.Name
        $after.Status | Should -Be 'Online'
        $after.Instances.Pid | Should -Be $app.Instances.Pid
        @(Get-ChildItem -Path $app.Markers -Exclude '*.ready').Count | Should -Be 0
    }

    It 'cannot be combined with -KillTimeout, which is for a plain stop (<Command>)' -ForEach @(
        @{ Command = 'Stop-ClusterApp' }
        @{ Command = 'Restart-ClusterApp' }
        @{ Command = 'Remove-ClusterApp' }
    ) {
        $thrown = Get-ThrownError { & $Command -Name anything -ShutdownWithMessage -KillTimeout 100 -Confirm:$false -ErrorAction Stop }

        $thrown.FullyQualifiedErrorId | Should -Be "AmbiguousParameterSet,Cluster.Commands.$($Command.Replace('-', ''))Command"
    }
}
