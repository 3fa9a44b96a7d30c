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
    $script:Tmux = (Get-Command -Name tmux -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1).Source
    # A tmux server of this suite's own, so that nothing else of the user's is touched.
    $script:TmuxSocket = 'cluster-test-' + [guid]::NewGuid().ToString('n').Substring(0, 8)

    # A plain function: its arguments go to tmux as they are (-d is not -Debug).
    function Invoke-Tmux {
        $output = & $Tmux -L $TmuxSocket @args 2>&1
        if ($LASTEXITCODE) { throw "tmux $($args -join ' ') failed: $output" }
        $output
    }

    # What the terminal shows, the scrollback included, with wrapped lines joined.
    function Get-Screen { (Invoke-Tmux capture-pane -p -J -S - -t interrupt) -join "`n" }

    # Each started instance writes STARTED/<pid>: the pids of the processes started so far.
    function Get-StartedPid([string] $Folder) { @(Get-ChildItem -Path $Folder | ForEach-Object { [int] $_.Name }) }
}

AfterAll {
    if ($Tmux) { & $Tmux -L $TmuxSocket kill-server 2>$null }
    Remove-TestClusterHome -Path $TestHome
}

Describe 'Ctrl+C during Invoke-ClusterReload' -Skip:$IsWindows {
    It 'finishes the instance in flight, warns, leaves the app PartlyReloaded, and the next reload completes it' {
        $Tmux | Should -Not -BeNullOrEmpty -Because 'this test drives pwsh in a tmux terminal: install tmux (apt-get install -y tmux; .ci/run does)'
        $started = Join-Path $TestHome 'started'
        New-Item -ItemType Directory -Path $started | Out-Null
        # Each new instance takes 3 s to listen, so the Ctrl+C lands while instance 0's successor is not ready.
        $app = Start-FixtureApp -Path $SlowReady -Name partial -Instances 2 -Environment @{ LISTEN_DELAY_MS = '3000'; STARTED = $started } -StartParameters @{ ListenTimeout = 20000 }
        $app.Status | Should -Be 'Online'
        $firstPids = @($app.Instances | ForEach-Object Pid)
        $generation = @($app.Instances.Generation | Sort-Object -Unique)
        $generation.Count | Should -Be 1

        $pwsh = @(Get-PwshCommandLine) + @('-NoProfile', '-NoLogo', '-NoExit', '-Command', 'Import-Module $env:CLUSTER_MODULE_PATH')
        $command = @('env', "CLUSTER_HOME=$TestHome", "CLUSTER_MODULE_PATH=$env:CLUSTER_MODULE_PATH", 'NO_COLOR=1', 'TERM=xterm') + $pwsh |
            ForEach-Object { "'" + ($_ -replace "'", "'\''") + "'" }
        Invoke-Tmux new-session -d -s interrupt -x 250 -y 50 ($command -join ' ') | Out-Null
        Wait-Until { (Get-Screen) -match '(?m)^PS .*>' } -TimeoutSeconds 30 -Because 'pwsh in tmux to show its prompt'

        Invoke-Tmux send-keys -t interrupt 'Invoke-ClusterReload -Name partial -ListenTimeout 20000; "reload-returned"' Enter | Out-Null
        Wait-Until { (Get-StartedPid $started).Count -ge 3 } -TimeoutSeconds 20 -Because "the reload to start instance 0's successor"
        Invoke-Tmux send-keys -t interrupt C-c | Out-Null

        Wait-Until { (Get-Screen) -match 'stops once the instance being replaced is done' } -TimeoutSeconds 20 -Because 'the cmdlet to warn as it stops'
        $screen = Get-Screen
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
