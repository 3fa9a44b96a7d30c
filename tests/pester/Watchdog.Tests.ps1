#Requires -Version 7.0
# Cmdlets never wait for ever, end to end: a host stopped with SIGSTOP makes Get-ClusterApp fail in time with
# HostNotResponding, naming the host's pid and log; a reload that outlasts the timeout still succeeds (the host's
# heartbeats keep the cmdlet waiting); Stop-ClusterHost -Force deals with a host that does not answer; host.pid;
# a garbled frame is a HostProtocolError. Real host, real Node apps on 127.0.0.1. Run by build.ps1 -Task Test,
# which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:SlowReady = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/watchdog/slow-ready.js')).Path
    $script:Spawner = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/processtree/spawner.js')).Path
    $script:Node = (Get-Command -Name node -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
    $script:Stopped = [System.Collections.Generic.List[int]]::new()

    # SIGSTOP / SIGCONT: the host cannot tell it was stopped, it just does nothing until it is continued.
    function Suspend-TestProcess([int] $Id) {
        & kill -STOP $Id
        if ($LASTEXITCODE) { throw "kill -STOP $Id failed." }
        $Stopped.Add($Id)
    }

    function Resume-TestProcess([int] $Id) {
        & kill -CONT $Id 2>$null
        $null = $Stopped.Remove($Id)
    }

    # A host continued after a cmdlet gave up on it still reads what that cmdlet sent, a stop of the host
    # included, and may be exiting now: the connection breaks, and the next cmdlet starts a new host.
    function Remove-AllApps {
        try {
            Get-ClusterApp -ErrorAction SilentlyContinue | Remove-ClusterApp -Confirm:$false -ErrorAction SilentlyContinue
        }
        catch {
            Get-ClusterApp -ErrorAction SilentlyContinue | Remove-ClusterApp -Confirm:$false -ErrorAction SilentlyContinue
        }
    }
}

AfterAll {
    foreach ($id in @($Stopped)) { Resume-TestProcess $id }
    $env:CLUSTER_TIMEOUT_SECONDS = $null
    Remove-TestClusterHome -Path $TestHome
}

Describe 'A host that does not answer' -Skip:$IsWindows {
    AfterEach {
        foreach ($id in @($Stopped)) { Resume-TestProcess $id }
        $env:CLUSTER_TIMEOUT_SECONDS = $null
        Remove-AllApps
    }

    It 'makes Get-ClusterApp fail with HostNotResponding, naming the host''s pid, its log and what to do' {
        $app = Start-FixtureApp -Path $SlowReady -Name answering -Instances 1 -Environment @{ LISTEN_DELAY_MS = '10' }
        $hostPid = (Get-ClusterHost).Pid
        Suspend-TestProcess $hostPid
        $env:CLUSTER_TIMEOUT_SECONDS = '2'

        $thrown = Get-ThrownError { Get-ClusterApp -ErrorAction Stop }

        $thrown.FullyQualifiedErrorId | Should -Be 'GetClusterAppHostNotResponding,Cluster.Commands.GetClusterAppCommand'
        $thrown.CategoryInfo.Category | Should -Be 'OperationTimeout'
        $thrown.TargetObject | Should -Be $hostPid
        $message = $thrown.Exception.Message
        $message | Should -Match "\(pid $hostPid\) did not answer within 2 seconds"
        $message | Should -BeLike "*$(Join-Path $TestHome 'logs/host.log')*"
        $message | Should -BeLike '*Stop-ClusterHost -Force*'
        $message | Should -BeLike "*kill -9 $hostPid*"

        Resume-TestProcess $hostPid
        $env:CLUSTER_TIMEOUT_SECONDS = $null
        (Get-ClusterApp -Name $app.Name).Status | Should -Be 'Online' -Because 'the host answers again once continued, its apps untouched'
        (Get-ClusterHost).Pid | Should -Be $hostPid
    }

    It 'makes Stop-ClusterHost without -Force fail with HostNotResponding and leaves the host alone' {
        $hostPid = (Get-ClusterHost).Pid
        Suspend-TestProcess $hostPid
        $env:CLUSTER_TIMEOUT_SECONDS = '2'

        $thrown = Get-ThrownError { Stop-ClusterHost -Confirm:$false -ErrorAction Stop }

        $thrown.FullyQualifiedErrorId | Should -Be 'StopClusterHostHostNotResponding,Cluster.Commands.StopClusterHostCommand'
        Test-ProcessRunning -Id $hostPid | Should -BeTrue
    }

    It 'is killed by Stop-ClusterHost -Force; a new host takes its apps back and stops them, children included' -Skip:(-not $IsLinux) {
        $list = Join-Path $TestHome 'forced.children'
        $app = Start-FixtureApp -Path $Spawner -Name forced -Instances 2 -Environment @{ CHILD_PIDS = $list; CHILDREN = '2' }
        $workers = @($app.Instances | ForEach-Object Pid)
        Wait-Until { @(Get-Content -Path $list -ErrorAction SilentlyContinue).Count -eq 4 } -TimeoutSeconds 10 -Because 'each worker to list its two children'
        $children = @(Get-Content -Path $list | ForEach-Object { [int] ($_ -split ' ')[1] })
        $hostPid = (Get-ClusterHost).Pid
        Suspend-TestProcess $hostPid
        $env:CLUSTER_TIMEOUT_SECONDS = '2'

        Stop-ClusterHost -Force -Confirm:$false -WarningVariable warnings -WarningAction SilentlyContinue

        $null = $Stopped.Remove($hostPid) # killed, not to be continued
        Test-ProcessRunning -Id $hostPid | Should -BeFalse
        @($warnings) -join ' ' | Should -BeLike "*(pid $hostPid) did not answer within 2 seconds: killing it*"
        Wait-Until { @($workers + $children | Where-Object { Test-ProcessRunning -Id $_ }).Count -eq 0 } -TimeoutSeconds 10 -Because 'the new host stops the apps it took back, and what their instances spawned'
        Join-Path $TestHome 'host.pid' | Should -Not -Exist -Because 'the new host stopped cleanly'
    }

    It 'does not trip on a reload that takes longer than the timeout: the host''s heartbeats keep the cmdlet waiting' {
        # Each new instance takes 3 s to listen: 6 s for the two, three times the timeout.
        $app = Start-FixtureApp -Path $SlowReady -Name slow -Instances 2 -Environment @{ LISTEN_DELAY_MS = '3000' } -StartParameters @{ ListenTimeout = 20000 }
        $oldPids = @($app.Instances | ForEach-Object Pid)
        $env:CLUSTER_TIMEOUT_SECONDS = '2'

        $took = Measure-Command { $script:reloaded = Invoke-ClusterReload -Name $app.Name -ListenTimeout 20000 -ErrorAction Stop }

        $took.TotalSeconds | Should -BeGreaterThan 4 -Because 'the reload must outlast the 2 s timeout for this test to mean anything'
        $reloaded.Status | Should -Be 'Online'
        $reloaded.Instances.Pid | ForEach-Object { $_ | Should -Not -BeIn $oldPids }
        foreach ($answer in 1..4 | ForEach-Object { Invoke-TestRequest -Port $app.Port }) {
            [int] $answer.pid | Should -BeIn $reloaded.Instances.Pid
        }
    }
}

Describe 'CLUSTER_TIMEOUT_SECONDS' {
    AfterEach { $env:CLUSTER_TIMEOUT_SECONDS = $null }

    It 'refuses a value that is not a number of seconds (<Value>), saying what it must be' -ForEach @(
        @{ Value = 'ten' }
        @{ Value = '0' }
        @{ Value = '-5' }
    ) {
        $env:CLUSTER_TIMEOUT_SECONDS = $Value

        $thrown = Get-ThrownError { Get-ClusterApp -ErrorAction Stop }

        $thrown.FullyQualifiedErrorId | Should -Be 'GetClusterAppTimeoutSettingInvalid,Cluster.Commands.GetClusterAppCommand'
        $thrown.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $thrown.Exception.Message | Should -BeLike "CLUSTER_TIMEOUT_SECONDS is '$Value'*"
    }
}

Describe 'host.pid' -Skip:$IsWindows {
    It 'holds the running host''s pid, readable by its owner only, and is removed when the host stops' {
        $hostPid = (Get-ClusterHost).Pid
        $file = Join-Path $TestHome 'host.pid'

        (Get-Content -Raw $file).Trim() | Should -Be "$hostPid"
        (Get-Item $file).UnixFileMode | Should -Be ([IO.UnixFileMode] 'UserRead, UserWrite')

        Stop-ClusterHost -Confirm:$false
        $file | Should -Not -Exist
    }
}

Describe 'A garbled frame from the host' -Skip:$IsWindows {
    BeforeAll {
        # A stand-in for the host on the control socket of a CLUSTER_HOME of its own, answering any request
        # with one line.
        $script:FakeHome = New-TestClusterHome
        $env:CLUSTER_HOME = $TestHome
        $script:FakeHost = $null
        function Start-FakeHost([string] $Reply) {
            $socket = Join-Path $FakeHome 'host.sock'
            Remove-Item -LiteralPath $socket -ErrorAction SilentlyContinue
            $script_ = "const net = require('node:net'); const reply = Buffer.from(process.argv[2], 'base64');" +
                "net.createServer((s) => { s.on('error', () => {}); s.once('data', () => s.write(reply)); }).listen(process.argv[1], () => console.log('listening'));"
            $encoded = [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($Reply + "`n"))
            $start = [Diagnostics.ProcessStartInfo]::new($Node)
            foreach ($argument in '-e', $script_, $socket, $encoded) { $start.ArgumentList.Add($argument) }
            $start.RedirectStandardOutput = $true
            $process = [Diagnostics.Process]::Start($start)
            if ($process.StandardOutput.ReadLine() -ne 'listening') { throw 'The fake host did not start.' }
            $script:FakeHost = $process
        }
    }

    AfterEach {
        if ($FakeHost) { $FakeHost.Kill(); $FakeHost.WaitForExit(); $FakeHost.Dispose(); $script:FakeHost = $null }
        $env:CLUSTER_HOME = $TestHome
    }

    AfterAll {
        Remove-Item -Recurse -Force $FakeHome -ErrorAction SilentlyContinue
        $env:CLUSTER_HOME = $TestHome
    }

    It 'reaches the user as HostProtocolError, not a JsonException: <Reply>' -ForEach @(
        @{ Reply = 'this is not json' }
        @{ Reply = '{"done": tru' }
        @{ Reply = '[1, 2, 3]' }
        @{ Reply = 'null' }
        @{ Reply = '{"done": "yes"}' }
    ) {
        Start-FakeHost $Reply
        $env:CLUSTER_HOME = $FakeHome

        $thrown = Get-ThrownError { Get-ClusterApp -ErrorAction Stop }

        $thrown.FullyQualifiedErrorId | Should -Be 'GetClusterAppHostProtocolError,Cluster.Commands.GetClusterAppCommand'
        $thrown.CategoryInfo.Category | Should -Be 'ProtocolError'
        $thrown.Exception.Message | Should -BeLike '*not a frame of the Cluster protocol*'
        $thrown.Exception.InnerException | Should -Not -BeNullOrEmpty
    }
}
