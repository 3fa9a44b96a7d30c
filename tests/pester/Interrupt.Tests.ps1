#Requires -Version 7.0
# Ctrl+C during a reload, for real: an interactive pwsh runs in a tmux terminal, Invoke-ClusterReload of a
# slow-to-ready 2-instance app is typed into it, and tmux sends C-c the way a keyboard does. The reload
# finishes the instance in flight and stops; the cmdlet warns; the app says PartlyReloaded with instances of
# different generations; the next reload completes the job. Needs tmux (.ci/run installs it). Run by build.ps1
# -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:SlowReady = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/watchdog/slow-ready.js')).Path
    $script:Terminal = $null

    # Each started instance writes STARTED/<pid>: the pids of the processes started so far.
    function Get-StartedPid([string] $Folder) { @(Get-ChildItem -Path $Folder | ForEach-Object { [int] $_.Name }) }
}

AfterAll {
    Stop-TestTerminal $Terminal
    Remove-TestClusterHome -Path $TestHome
}

Describe 'Ctrl+C during Invoke-ClusterReload' -Skip:$IsWindows {
    It 'finishes the instance in flight, warns, leaves the app PartlyReloaded, and the next reload completes it' {
        $started = Join-Path $TestHome 'started'
        New-Item -ItemType Directory -Path $started | Out-Null
        # Each new instance takes 3 s to listen, so the Ctrl+C lands while instance 0's successor is not ready.
        $app = Start-FixtureApp -Path $SlowReady -Name partial -Instances 2 -Environment @{ LISTEN_DELAY_MS = '3000'; STARTED = $started } -StartParameters @{ ListenTimeout = 20000 }
        $app.Status | Should -Be 'Online'
        $firstPids = @($app.Instances | ForEach-Object Pid)
        $generation = @($app.Instances.Generation | Sort-Object -Unique)
        $generation.Count | Should -Be 1

        $script:Terminal = Start-TestTerminal -Name interrupt
        Send-TestTerminal $Terminal -Line 'Invoke-ClusterReload -Name partial -ListenTimeout 20000; "reload-returned"'
        Wait-Until { (Get-StartedPid $started).Count -ge 3 } -TimeoutSeconds 20 -Because "the reload to start instance 0's successor"
        Send-TestTerminal $Terminal -Keys C-c

        Wait-Until { (Get-TestTerminalScreen $Terminal) -match 'stops once the instance being replaced is done' } -TimeoutSeconds 20 -Because 'the cmdlet to warn as it stops'
        $screen = Get-TestTerminalScreen $Terminal
        $screen | Should -Match "WARNING: The reload of 'partial' stops once the instance being replaced is done"
        $screen | Should -Match 'PartlyReloaded'
        $screen | Should -Not -Match '(?m)^reload-returned' -Because 'Ctrl+C stops the whole command line'

        Wait-Until { (Get-ClusterApp -Name partial).Status -eq 'PartlyReloaded' } -TimeoutSeconds 20 -Because 'the host to finish instance 0 and stop'
        $partly = Get-ClusterApp -Name partial
        $byInstance = @{}
        foreach ($instance in $partly.Instances) { $byInstance[[int] $instance.Instance] = $instance }
        $byInstance[0].Generation | Should -BeGreaterThan $generation[0] -Because 'instance 0 was replaced before the reload stopped'
        $byInstance[1].Generation | Should -Be $generation[0] -Because 'instance 1 was not touched'
        $byInstance[0].Pid | Should -Not -BeIn $firstPids
        $byInstance[1].Pid | Should -Be ($app.Instances | Where-Object Instance -EQ 1).Pid
        $partly.Instances.Status | ForEach-Object { $_ | Should -Be 'Online' }
        (Get-StartedPid $started).Count | Should -Be 3 -Because 'no successor was started for instance 1'

        $completed = Invoke-ClusterReload -Name partial -ListenTimeout 20000

        $completed.Status | Should -Be 'Online'
        @($completed.Instances.Generation | Sort-Object -Unique).Count | Should -Be 1 -Because 'the next reload brings every instance to one generation'
        $completed.Instances.Status | ForEach-Object { $_ | Should -Be 'Online' }
        $completed.ReloadError | Should -BeNullOrEmpty
    }
}
