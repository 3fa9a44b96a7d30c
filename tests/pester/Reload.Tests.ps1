#Requires -Version 7.0
# Zero-downtime reload end to end: Invoke-ClusterReload and Invoke-ClusterGracefulReload against a real host
# running the Node apps of tests/fixtures/reload on loopback ports. Run by build.ps1 -Task Test, which sets
# CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule

    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/reload')).Path
    $script:PSDefaultParameterValues = @{ 'Start-TestApp:Fixtures' = $Fixtures }

    # The old instances of a stubborn app (it logs 'ignoring shutdown <pid>' and 'ignoring SIGINT <pid>' and stays
    # up) each got 'shutdown' once, SIGINT once the graceful timeout had passed, and were killed once the kill
    # timeout had passed too; the new ones serve.
    function Assert-KilledAfterGracefulTimeout {
        param([string] $Name, [int[]] $OldPids, $After)
        $After.Status | Should -Be 'Online'
        foreach ($newPid in Get-InstancePid $After) { $newPid | Should -Not -BeIn $OldPids }
        Wait-OutputLine -Name $Name -Line ($OldPids | ForEach-Object { "ignoring shutdown $_"; "ignoring SIGINT $_" })
        $hostLog = Get-HostLogLine
        foreach ($oldPid in $OldPids) {
            Test-ProcessAlive -Id $oldPid | Should -BeFalse
            $own = @(Get-OutputLine -Name $Name | Where-Object { $_ -like "ignoring * $oldPid" })
            $own | Should -Be @("ignoring shutdown $oldPid", "ignoring SIGINT $oldPid") -Because "old worker $oldPid gets 'shutdown', then SIGINT, once each, before the kill"
            @($hostLog -match "\(pid $oldPid\) did not exit in time") | Should -HaveCount 1 -Because "old worker $oldPid was killed once the graceful timeout passed"
        }
    }

    # Instance number -> pid of the process serving it.
    function Get-PidMap {
        param([Parameter(Mandatory)] $App)
        $map = @{}
        foreach ($instance in $App.Instances) { $map[[int] $instance.Instance] = $instance.Pid }
        $map
    }

    function Get-InstancePid {
        param([Parameter(Mandatory)] $App)
        @($App.Instances | ForEach-Object Pid)
    }

    # Requests until every instance has answered (or the bound is reached); returns every answer.
    function Get-AnswerFromEveryInstance {
        param([Parameter(Mandatory)] [int] $Port, [Parameter(Mandatory)] [int] $Instances, [int] $MaxRequests = 60)
        $answers = [System.Collections.Generic.List[object]]::new()
        $seen = @{}
        while ($seen.Count -lt $Instances -and $answers.Count -lt $MaxRequests) {
            $answer = Invoke-TestRequest -Port $Port
            $answers.Add($answer)
            $seen[$answer.instance] = $true
        }
        $answers
    }

    # The lines an app wrote to stdout, in the order they were written, per instance.
    function Get-OutputLine {
        param([Parameter(Mandatory)] [string] $Name, [int] $Instance = -1)
        $selection = @{ Name = $Name; Tail = 10000 }
        if ($Instance -ge 0) { $selection.Instance = $Instance }
        @(Get-ClusterAppLog @selection | Where-Object Stream -EQ 'Out' | ForEach-Object Text)
    }

    # Output passes through the Node primary on its way to the log, so a worker's last line may land there
    # just after the worker has exited.
    function Wait-OutputLine {
        param([Parameter(Mandatory)] [string] $Name, [Parameter(Mandatory)] [string[]] $Line, [int] $Instance = -1)
        Wait-Until {
            $written = Get-OutputLine -Name $Name -Instance $Instance
            @($Line | Where-Object { $_ -notin $written }).Count -eq 0
        } -TimeoutSeconds 10 -Because "'$Name' to log: $($Line -join ', ')"
    }

    function Get-HostLogLine {
        @(Get-Content -Path (Join-Path $TestHome 'logs/host.log'))
    }

    # The processes whose parent is the given one.
    function Get-ChildProcessId {
        param([Parameter(Mandatory)] [int] $ParentId)
        @(Get-Process | Where-Object { try { $_.Parent.Id -eq $ParentId } catch { $false } } | ForEach-Object Id)
    }
}

AfterAll {
    Remove-TestClusterHome -Path $TestHome
}

Describe 'Invoke-ClusterReload' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction Continue
    }

    It 'replaces each of <Instances> instances with a new process that keeps its NODE_APP_INSTANCE' -ForEach @(
        @{ Instances = 2 }
        @{ Instances = 4 }
    ) {
        $test = Start-TestApp -Script 'app.js' -Name "plain-$Instances" -Instances $Instances
        $before = Get-ClusterApp -Name $test.Name
        $oldPids = Get-InstancePid $before

        $after = @(Invoke-ClusterReload -Name $test.Name)

        $after.Count | Should -Be 1
        $after[0] | Should -BeOfType ([Cluster.App])
        $reloaded = $after[0]
        $reloaded.Name | Should -Be $test.Name
        $reloaded.Status | Should -Be 'Online'
        $reloaded.InstanceCount | Should -Be $Instances
        foreach ($instance in $reloaded.Instances) {
            $old = $before.Instances | Where-Object Instance -EQ $instance.Instance
            $instance.Pid | Should -Not -BeNullOrEmpty
            $instance.Pid | Should -Not -BeIn $oldPids
            $instance.Status | Should -Be 'Online'
            $instance.Restarts | Should -Be ($old.Restarts + 1)
        }
        (Get-PidMap (Get-ClusterApp -Name $test.Name)).GetEnumerator() | Sort-Object Key | ForEach-Object Value |
            Should -Be ((Get-PidMap $reloaded).GetEnumerator() | Sort-Object Key | ForEach-Object Value)
        foreach ($oldPid in $oldPids) {
            Test-ProcessAlive -Id $oldPid | Should -BeFalse -Because "old worker $oldPid must be gone once the reload returns"
        }

        $expected = Get-PidMap $reloaded
        $answers = Get-AnswerFromEveryInstance -Port $test.Port -Instances $Instances
        @($answers.instance | Sort-Object -Unique) | Should -Be @(0..($Instances - 1) | ForEach-Object { "$_" })
        foreach ($answer in $answers) {
            $answer.pid | Should -Be $expected[[int] $answer.instance] -Because 'each new worker answers with the NODE_APP_INSTANCE of the instance it replaced'
        }
    }

    It 'reloads every app piped from Get-ClusterApp' {
        $first = Start-TestApp -Script 'app.js' -Name 'piped-a'
        $second = Start-TestApp -Script 'app.js' -Name 'piped-b'
        $oldPids = @(Get-ClusterApp | ForEach-Object { Get-InstancePid $_ })
        $oldPids.Count | Should -Be 4

        $reloaded = @(Get-ClusterApp | Invoke-ClusterReload)

        $reloaded.Count | Should -Be 2
        @($reloaded.Name | Sort-Object) | Should -Be @($first.Name, $second.Name)
        foreach ($app in $reloaded) {
            $app.Status | Should -Be 'Online'
            $newPids = Get-InstancePid $app
            $newPids.Count | Should -Be 2
            foreach ($newPid in $newPids) { $newPid | Should -Not -BeIn $oldPids }
        }
    }

    It 'restarts a fork-mode app instead, with a warning that reloading needs cluster mode' {
        $name = 'forked'
        $before = Start-ClusterApp -Path (Join-Path $Fixtures 'no-listen.js') -Name $name -Mode Fork -Instances 2
        $before.Mode | Should -Be 'Fork'
        $oldPids = Get-InstancePid $before

        $after = Invoke-ClusterReload -Name $name -WarningVariable warnings -WarningAction SilentlyContinue

        $warnings.Count | Should -Be 1
        "$($warnings[0])" | Should -BeLike '*fork mode*'
        "$($warnings[0])" | Should -BeLike '*-Mode Cluster*'
        $after.Status | Should -Be 'Online'
        foreach ($instance in $after.Instances) {
            $instance.Pid | Should -Not -BeNullOrEmpty
            $instance.Pid | Should -Not -BeIn $oldPids
            $instance.Restarts | Should -Be 1
        }
        foreach ($oldPid in $oldPids) { Test-ProcessAlive -Id $oldPid | Should -BeFalse }
    }

    It 'changes nothing with -WhatIf (<Command>)' -ForEach @(
        @{ Command = 'Invoke-ClusterReload' }
        @{ Command = 'Invoke-ClusterGracefulReload' }
    ) {
        $test = Start-TestApp -Script 'app.js' -Name 'what-if'
        $before = Get-ClusterApp -Name $test.Name

        $output = & $Command -Name $test.Name -WhatIf

        $output | Should -BeNullOrEmpty
        $after = Get-ClusterApp -Name $test.Name
        Get-InstancePid $after | Should -Be (Get-InstancePid $before)
        $after.Restarts | Should -Be $before.Restarts
        $after.Status | Should -Be 'Online'
    }

    It 'reloads with progress output turned off' {
        $ProgressPreference = 'SilentlyContinue'
        $test = Start-TestApp -Script 'app.js' -Name 'quiet'
        $oldPids = Get-InstancePid $test

        $after = Invoke-ClusterReload -Name $test.Name

        $after.Status | Should -Be 'Online'
        foreach ($newPid in Get-InstancePid $after) { $newPid | Should -Not -BeIn $oldPids }
    }
}

Describe 'Invoke-ClusterGracefulReload' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction Continue
    }

    It "sends each old instance the 'shutdown' message once, and lets it exit on its own" {
        $test = Start-TestApp -Script 'graceful.js' -Name 'graceful'
        $oldPids = Get-InstancePid $test

        $after = Invoke-ClusterGracefulReload -Name $test.Name

        $after.Status | Should -Be 'Online'
        $newPids = Get-InstancePid $after
        foreach ($newPid in $newPids) { $newPid | Should -Not -BeIn $oldPids }
        foreach ($oldPid in $oldPids) { Test-ProcessAlive -Id $oldPid | Should -BeFalse }
        Wait-OutputLine -Name $test.Name -Line ($oldPids | ForEach-Object { "shutdown $_" })
        $shutdownLines = @(Get-OutputLine -Name $test.Name | Where-Object { $_ -like 'shutdown *' })
        foreach ($oldPid in $oldPids) {
            @($shutdownLines | Where-Object { $_ -eq "shutdown $oldPid" }).Count | Should -Be 1 -Because "old worker $oldPid gets 'shutdown' exactly once"
        }
        $shutdownLines.Count | Should -Be $oldPids.Count -Because "only the old workers get 'shutdown'"
        $hostLog = Get-HostLogLine
        foreach ($oldPid in $oldPids) {
            @($hostLog -match "\(pid $oldPid\) did not exit in time") | Should -BeNullOrEmpty -Because "old worker $oldPid exits on 'shutdown', before the graceful timeout"
        }
    }

    It "kills old instances that ignore 'shutdown' once PM2_GRACEFUL_TIMEOUT has passed" {
        $test = Start-TestApp -Script 'stubborn.js' -Name 'stubborn-env'
        $oldPids = Get-InstancePid $test
        $previous = $env:PM2_GRACEFUL_TIMEOUT
        $env:PM2_GRACEFUL_TIMEOUT = '500'
        try {
            $after = Invoke-ClusterGracefulReload -Name $test.Name
        }
        finally {
            $env:PM2_GRACEFUL_TIMEOUT = $previous
        }

        Assert-KilledAfterGracefulTimeout -Name $test.Name -OldPids $oldPids -After $after
    }

    It "kills old instances that ignore 'shutdown' once -GracefulTimeout has passed" {
        $test = Start-TestApp -Script 'stubborn.js' -Name 'stubborn-param'
        $oldPids = Get-InstancePid $test

        $after = Invoke-ClusterGracefulReload -Name $test.Name -GracefulTimeout 500

        Assert-KilledAfterGracefulTimeout -Name $test.Name -OldPids $oldPids -After $after
    }
}

Describe 'Readiness of new instances' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction Continue
    }

    It "retires an old instance as soon as its replacement says 'online', without waiting for the listen timeout" {
        $name = 'says-online'
        $before = Start-ClusterApp -Path (Join-Path $Fixtures 'no-listen.js') -Name $name -Instances 2 -Environment @{ ONLINE_AFTER_MS = '500' }
        $before.Status | Should -Be 'Online'
        $oldPids = Get-PidMap $before

        $after = Invoke-ClusterReload -Name $name -ListenTimeout 20000

        $after.Status | Should -Be 'Online'
        $newPids = Get-PidMap $after
        $hostLog = Get-HostLogLine
        foreach ($instance in 0, 1) {
            $newPids[$instance] | Should -Not -Be $oldPids[$instance]
            Test-ProcessAlive -Id $oldPids[$instance] | Should -BeFalse
            # Both workers of an instance write to the same log, in the order things happened.
            Wait-OutputLine -Name $name -Instance $instance -Line "online-sent $($newPids[$instance])", "sigint $($oldPids[$instance])"
            $lines = Get-OutputLine -Name $name -Instance $instance
            $onlineSent = [array]::IndexOf($lines, "online-sent $($newPids[$instance])")
            $oldStopped = [array]::IndexOf($lines, "sigint $($oldPids[$instance])")
            $onlineSent | Should -BeGreaterOrEqual 0 -Because 'the new worker says online'
            $oldStopped | Should -BeGreaterThan $onlineSent -Because 'the old worker is stopped only after its replacement said online'
            @($hostLog -match "\(pid $($newPids[$instance])\) neither listened") | Should -BeNullOrEmpty -Because "the new worker was ready by its 'online', not by the listen timeout"
        }
    }

    It 'counts a new instance that neither listens nor says online as ready once the listen timeout passes' {
        $name = 'says-nothing'
        $before = Start-ClusterApp -Path (Join-Path $Fixtures 'no-listen.js') -Name $name -Instances 2 -ListenTimeout 1000
        $oldPids = Get-InstancePid $before

        $after = Invoke-ClusterReload -Name $name -ListenTimeout 500

        $after.Status | Should -Be 'Online'
        $hostLog = Get-HostLogLine
        foreach ($newPid in Get-InstancePid $after) {
            $newPid | Should -Not -BeIn $oldPids
            @($hostLog -match "\(pid $newPid\) neither listened.* within 500 ms") | Should -HaveCount 1 -Because 'the new worker became ready when the 500 ms listen timeout passed'
        }
        foreach ($oldPid in $oldPids) { Test-ProcessAlive -Id $oldPid | Should -BeFalse }
    }

    It 'stops at a new instance that exits before it is ready, keeps the old ones serving, and recovers on the next reload' {
        $flag = Join-Path $TestHome 'broken.flag'
        $test = Start-TestApp -Script 'broken-when-flagged.js' -Name 'broken' -Environment @{ FLAG_FILE = $flag }
        $before = Get-ClusterApp -Name $test.Name
        $oldPids = Get-InstancePid $before
        Set-Content -Path $flag -Value 'broken'
        try {
            $failure = Get-ThrownError { Invoke-ClusterReload -Name $test.Name -ErrorAction Stop }
        }
        finally {
            Remove-Item -Path $flag -ErrorAction SilentlyContinue
        }

        $failure.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadNewInstanceExited,Cluster.Commands.InvokeClusterReloadCommand'
        $failure.Exception.Message | Should -BeLike '*reload-fixture: this version is broken (flag file present)*'
        $failed = Get-ClusterApp -Name $test.Name
        Get-InstancePid $failed | Should -Be $oldPids
        $failed.Restarts | Should -Be $before.Restarts
        $failed.Status | Should -Be 'ReloadFailed'
        $failed.ReloadError | Should -BeLike '*reload-fixture: this version is broken (flag file present)*'
        foreach ($request in 1..20) {
            (Invoke-TestRequest -Port $test.Port).pid | Should -BeIn $oldPids
        }

        $recovered = Invoke-ClusterReload -Name $test.Name

        $recovered.Status | Should -Be 'Online'
        $recovered.ReloadError | Should -BeNullOrEmpty
        foreach ($newPid in Get-InstancePid $recovered) { $newPid | Should -Not -BeIn $oldPids }
        (Get-ClusterApp -Name $test.Name).Status | Should -Be 'Online'
    }
}

Describe 'Reload under load' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction Continue
    }

    It 'loses no request during <Command> with <Connection> connections' -ForEach @(
        @{ Command = 'Invoke-ClusterReload'; Connection = 'keep-alive'; Script = 'app.js' }
        @{ Command = 'Invoke-ClusterReload'; Connection = 'close'; Script = 'app.js' }
        @{ Command = 'Invoke-ClusterGracefulReload'; Connection = 'keep-alive'; Script = 'graceful.js' }
    ) {
        $test = Start-TestApp -Script $Script -Name 'loaded'
        $oldPids = Get-InstancePid $test
        $client = Start-LoadClient -Port $test.Port -Connection $Connection
        try {
            $after = & $Command -Name $test.Name
        }
        finally {
            $result = Stop-LoadClient -Client $client
        }

        Write-Host "$Command, $Connection connections: $($result.ok) requests answered, $($result.failed) failed"
        $result.failed | Should -Be 0 -Because "no request may fail during a reload (errors: $($result.errors | ConvertTo-Json -Compress))"
        $result.ok | Should -BeGreaterThan 100 -Because "the load runs from before the reload until after it"
        $after.Status | Should -Be 'Online'
        $newPids = Get-InstancePid $after
        $servedBy = @($result.pids.Keys | ForEach-Object { [int] $_ })
        @($servedBy | Where-Object { $_ -in $oldPids }) | Should -Not -BeNullOrEmpty -Because 'the load began before the reload'
        @($servedBy | Where-Object { $_ -in $newPids }) | Should -Not -BeNullOrEmpty -Because 'the load went on after the reload'
    }
}

Describe 'Concurrent reloads' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction Continue
    }

    It 'refuses a second reload of an app while one runs, queues it with -Wait, and leaves no stray worker' {
        # New workers take 2 s to listen, so a reload of two instances runs for several seconds.
        $test = Start-TestApp -Script 'app.js' -Name 'slow' -Environment @{ LISTEN_DELAY_MS = '2000' } -StartParameters @{ ListenTimeout = 15000 }
        $before = Get-ClusterApp -Name $test.Name
        $oldPids = Get-InstancePid $before
        $first = Start-Job -ScriptBlock {
            param($ModulePath, $ClusterHome, $Name)
            $env:CLUSTER_HOME = $ClusterHome
            Import-Module $ModulePath
            @((Invoke-ClusterReload -Name $Name -ErrorAction Stop).Instances | ForEach-Object Pid)
        } -ArgumentList $env:CLUSTER_MODULE_PATH, $TestHome, $test.Name
        try {
            Wait-Until {
                $first.State -in 'Completed', 'Failed', 'Stopped' -or (Get-ClusterApp -Name $test.Name).Status -eq 'Reloading'
            } -TimeoutSeconds 60 -Because 'the first reload to begin'
            if ($first.State -eq 'Failed') {
                throw "The first reload failed: $($first.ChildJobs[0].JobStateInfo.Reason)"
            }

            $refused = Get-ThrownError { Invoke-ClusterReload -Name $test.Name -ErrorAction Stop }
            $queued = Invoke-ClusterReload -Name $test.Name -Wait

            $firstPids = @($first | Wait-Job -Timeout 60 | Receive-Job -ErrorAction Stop)
        }
        finally {
            $first | Remove-Job -Force
        }

        $refused.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadReloadInProgress,Cluster.Commands.InvokeClusterReloadCommand'
        $refused.CategoryInfo.Category | Should -Be 'ResourceBusy'
        $firstPids.Count | Should -Be 2 -Because 'the first reload completes'
        $queued.Status | Should -Be 'Online'
        foreach ($instance in $queued.Instances) {
            $instance.Restarts | Should -Be 2 -Because 'both reloads replaced every instance, one after the other'
            $instance.Pid | Should -Not -BeIn $oldPids
            $instance.Pid | Should -Not -BeIn $firstPids
        }
        foreach ($firstPid in $firstPids) { $firstPid | Should -Not -BeIn $oldPids }

        $queuedPids = Get-InstancePid $queued
        $primaryId = (Get-Process -Id $queuedPids[0]).Parent.Id
        @(Get-ChildProcessId -ParentId $primaryId | Sort-Object) | Should -Be @($queuedPids | Sort-Object) -Because 'the Node primary runs exactly the listed workers'
    }
}
