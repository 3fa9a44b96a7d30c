#Requires -Version 7.0
# Supervision end to end, with real processes: a Node primary lost under load (also mid-reload), a reload whose
# caller goes away, a graceful reload of a fork-mode app, a host killed while a reload waits for a new worker, what
# adoption keeps, an instance whose log cannot be opened, and a CLUSTER_HOME whose file system is full. Real host,
# real Node apps of tests/fixtures/supervision on 127.0.0.1. Run by build.ps1 -Task Test, which sets
# CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/supervision')).Path
    $script:PSDefaultParameterValues = @{ 'Start-TestApp:Fixtures' = $Fixtures }

    # The Node primary that runs a worker is its parent.
    function Get-PrimaryPid([int] $WorkerPid) {
        (Get-Process -Id $WorkerPid -ErrorAction Stop).Parent.Id
    }

    function Get-ChildPid([int] $ParentPid) {
        @(Get-Process | Where-Object { try { $_.Parent.Id -eq $ParentPid } catch { $false } } | ForEach-Object Id)
    }

    # Instance number -> pid.
    function Get-PidMap($App) {
        $map = @{}
        foreach ($instance in $App.Instances) { $map[[int] $instance.Instance] = $instance.Pid }
        $map
    }

    function Get-Instance($App, [int] $Instance) {
        $App.Instances | Where-Object Instance -EQ $Instance
    }

    function Get-HostLogLine([string] $ClusterHome = $TestHome) {
        @(Get-Content -Path (Join-Path $ClusterHome 'logs/host.log') -ErrorAction SilentlyContinue)
    }

    # The answers of requests, a new connection each, until every one of the pids has answered (at most MaxRequests).
    function Get-Answer {
        param([Parameter(Mandatory)] [int] $Port, [Parameter(Mandatory)] [int[]] $ExpectedPid, [int] $MaxRequests = 60)
        $answers = [System.Collections.Generic.List[object]]::new()
        for ($i = 0; $i -lt $MaxRequests -and @($ExpectedPid | Where-Object { $_ -notin $answers.pid }).Count -gt 0; $i++) {
            $answers.Add((Invoke-TestRequest -Port $Port))
        }
        $answers
    }

    function Get-Failure([scriptblock] $Command) {
        try {
            & $Command
        }
        catch {
            return $_
        }
        throw 'The command was expected to fail, and it succeeded.'
    }

    # Runs Invoke-ClusterReload in a child pwsh: the caller that a test makes go away.
    function Start-ReloadCaller([string] $Name, [switch] $Wait) {
        $output = Join-Path $TestHome "caller-$([guid]::NewGuid().ToString('n').Substring(0, 6)).txt"
        Start-ChildPwsh -OutputPath $output -Command "Import-Module '$env:CLUSTER_MODULE_PATH'; Invoke-ClusterReload -Name '$Name' -Wait:`$$Wait -ErrorAction Stop" |
            Add-Member -NotePropertyName Output -NotePropertyValue $output -PassThru
    }

    # Workers of server.js started from now on wait to listen until Unblock-NewWorker.
    function Block-NewWorker([string] $DelayFile) {
        Remove-Item -LiteralPath "$DelayFile.go" -ErrorAction SilentlyContinue
        Set-Content -LiteralPath $DelayFile -Value 'go'
    }

    function Unblock-NewWorker([string] $DelayFile) {
        New-Item -ItemType File -Path "$DelayFile.go" -Force | Out-Null
    }

    function Stop-HostWithSigkill {
        $clusterHost = Get-ClusterHost
        Stop-Process -Id $clusterHost.Pid -Force # SIGKILL on Unix
        Wait-Until { -not (Test-ProcessAlive -Id $clusterHost.Pid) } -Because 'the host to die of SIGKILL'
        $clusterHost.Pid
    }

    function Remove-AllApps {
        Get-ClusterApp -ErrorAction SilentlyContinue | Remove-ClusterApp -Confirm:$false -ErrorAction Continue
    }
}

AfterAll {
    Remove-TestClusterHome $TestHome
}

Describe 'A lost Node primary' {
    AfterEach { Remove-AllApps }

    It 'is noticed at once: both apps that shared it answer again under load, with the same NODE_APP_INSTANCE values, and never show the dead workers online' {
        $first = Start-TestApp -Script 'server.js' -Name 'shared-a'
        $second = Start-TestApp -Script 'server.js' -Name 'shared-b'
        $deadPids = @($first.Instances.Pid) + @($second.Instances.Pid)
        $primaries = @($deadPids | ForEach-Object { Get-PrimaryPid $_ } | Sort-Object -Unique)
        $primaries.Count | Should -Be 1 -Because 'two apps on the same Node executable and scheduling policy share one primary'
        $loads = @($first, $second | ForEach-Object { Start-LoadClient -Port $_.Port -Concurrency 2 -MaxSeconds 30 })
        $lies = [System.Collections.Generic.List[string]]::new()
        $polls = [System.Collections.Generic.List[int]]::new()
        try {
            Stop-Process -Id $primaries[0] -Force # SIGKILL: its cluster workers exit with it

            # Polled through the outage, until both apps are back with new workers. The host learns of the death
            # through its connection to the primary, so a poll sent in the same instant may still find the workers
            # online: a worker counts as dead once it was gone before the previous poll was sent.
            $timedOut = $null
            $goneBefore = [System.Collections.Generic.HashSet[int]]::new()
            try {
                Wait-Until {
                    $goneNow = @($deadPids | Where-Object { -not (Test-ProcessAlive -Id $_) })
                    $apps = @(Get-ClusterApp -ErrorAction Stop)
                    $polls.Add($polls.Count)
                    foreach ($instance in $apps.Instances) {
                        if ("$($instance.Status)" -eq 'Online' -and (-not $instance.Pid -or $goneBefore.Contains([int] $instance.Pid))) {
                            $lies.Add("$($instance.AppName)[$($instance.Instance)] Online with pid '$($instance.Pid)'")
                        }
                    }
                    foreach ($gone in $goneNow) { $null = $goneBefore.Add($gone) }
                    $back = @($apps | Where-Object { "$($_.Status)" -eq 'Online' -and -not @($_.Instances.Pid | Where-Object { $_ -in $deadPids -or -not $_ }) })
                    $back.Count -eq 2
                } -TimeoutSeconds 20 -Because 'both apps to come back online on a new primary'
            }
            catch {
                $timedOut = $_
            }
            if (-not $timedOut) {
                foreach ($app in $first, $second) {
                    $pids = @((Get-ClusterApp $app.Name).Instances.Pid)
                    $null = Get-Answer -Port $app.Port -ExpectedPid $pids
                }
            }
        }
        finally {
            $results = @($loads | ForEach-Object { Stop-LoadClient -Client $_ })
        }

        @($lies | Select-Object -Unique) | Should -BeNullOrEmpty -Because "no poll of the $($polls.Count) during the outage may report a dead worker, or none, online"
        $timedOut | Should -BeNullOrEmpty
        foreach ($dead in $deadPids) { Test-ProcessRunning -Id $dead | Should -BeFalse -Because "worker $dead exited with its primary" }
        Test-ProcessAlive -Id $primaries[0] | Should -BeFalse
        $newPrimaries = @()
        foreach ($app in $first, $second) {
            $after = Get-ClusterApp $app.Name
            $after.Status | Should -Be 'Online'
            $after.ReloadError | Should -BeNullOrEmpty
            @($after.Instances.Instance) | Should -Be @(0, 1)
            foreach ($instance in $after.Instances) {
                $instance.Status | Should -Be 'Online'
                $instance.Pid | Should -Not -BeIn $deadPids
                $instance.Restarts | Should -Be 1 -Because 'losing its primary restarted the instance once'
                $instance.Generation | Should -Be 1 -Because 'a restart after a crash keeps the generation'
                $instance.Reason | Should -BeNullOrEmpty
            }
            $expected = Get-PidMap $after
            foreach ($answer in Get-Answer -Port $app.Port -ExpectedPid @($expected.Values)) {
                $answer.pid | Should -Be $expected[[int] $answer.instance] -Because 'each new worker keeps the NODE_APP_INSTANCE of the one it replaced'
            }
            $newPrimaries += @($after.Instances.Pid | ForEach-Object { Get-PrimaryPid $_ })
        }
        @($newPrimaries | Sort-Object -Unique).Count | Should -Be 1 -Because 'the two apps share the new primary too'
        for ($i = 0; $i -lt 2; $i++) {
            $app = @($first, $second)[$i]
            $served = @($results[$i]['pids'].Keys | ForEach-Object { [int] $_ })
            $newPids = @((Get-ClusterApp $app.Name).Instances.Pid)
            Write-Host "$($app.Name): $($results[$i]['ok']) requests answered, $($results[$i]['failed']) failed while its primary was lost"
            @($served | Where-Object { $_ -in $newPids }) | Should -Not -BeNullOrEmpty -Because "the load against '$($app.Name)' was answered again by the new workers"
        }
    }

    It 'stops a reload under way when it dies, says why, and the next reload completes' {
        $delayFile = Join-Path $TestHome 'midreload.delay'
        $app = Start-TestApp -Script 'server.js' -Name 'midreload' -Environment @{ LISTEN_DELAY_FILE = $delayFile } -StartParameters @{ ListenTimeout = 15000 }
        $before = Get-PidMap $app
        $primary = Get-PrimaryPid $before[0]
        Block-NewWorker $delayFile
        $reload = Start-ThreadJob -ScriptBlock {
            param($ModulePath, $ClusterHome)
            $env:CLUSTER_HOME = $ClusterHome
            Import-Module $ModulePath
            try { $null = Invoke-ClusterReload -Name midreload -ErrorAction Stop } catch { $_ }
        } -ArgumentList $env:CLUSTER_MODULE_PATH, $TestHome
        try {
            # A thread job is NotStarted until its runspace is open, which under load takes a while: only a job
            # that has finished means the reload ended before it forked.
            Wait-Until { (Get-ChildPid $primary).Count -eq 3 -or $reload.State -in 'Completed', 'Failed', 'Stopped' } -Because 'the reload to fork the new worker of instance 0'
            $reload.State | Should -Not -BeIn 'Completed', 'Failed', 'Stopped' -Because "the reload still waits for its new worker: $($reload | Receive-Job -Keep)"
            $candidate = @(Get-ChildPid $primary | Where-Object { $_ -notin $before.Values })
            $candidate.Count | Should -Be 1
            Stop-Process -Id $primary -Force
            Unblock-NewWorker $delayFile # for the workers that replace those lost with the primary
            $null = $reload | Wait-Job -Timeout 30
            $failure = $reload | Receive-Job
        }
        finally {
            $reload | Remove-Job -Force
        }

        $failure | Should -Not -BeNullOrEmpty -Because 'the reload did not complete'
        $failure.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadPrimaryLost,Cluster.Commands.InvokeClusterReloadCommand'
        $failure.Exception.Message | Should -BeLike "*Node primary of 'midreload' exited during the reload*Reload again*"
        Wait-Until { $a = Get-ClusterApp midreload; @($a.Instances | Where-Object { "$($_.Status)" -eq 'Online' -and $_.Pid -notin $before.Values }).Count -eq 2 } -Because 'both instances to come back on a new primary'
        $back = Get-ClusterApp midreload
        $back.Status | Should -Be 'PartlyReloaded' -Because 'the reload did not complete'
        $back.ReloadError | Should -BeLike '*exited during the reload*'
        foreach ($instance in $back.Instances) {
            $instance.Pid | Should -Not -Be $candidate[0]
            $instance.Generation | Should -Be 1 -Because 'each instance came back in the generation it ran'
            $instance.Restarts | Should -Be 1
        }

        Set-Content -Path $delayFile -Value '0'
        $completed = Invoke-ClusterReload -Name midreload
        $completed.Status | Should -Be 'Online'
        $completed.ReloadError | Should -BeNullOrEmpty
        @($completed.Instances.Generation) | Should -Be @(2, 2)
    }
}

Describe 'A reload whose caller goes away' {
    AfterEach { Remove-AllApps }

    It 'finishes the instance in flight, leaves the app partly reloaded by generation, and the next reload completes it' {
        $delayFile = Join-Path $TestHome 'abandoned.delay'
        $app = Start-TestApp -Script 'server.js' -Name 'abandoned' -Environment @{ LISTEN_DELAY_FILE = $delayFile } -StartParameters @{ ListenTimeout = 15000 }
        $before = Get-PidMap $app
        $primary = Get-PrimaryPid $before[0]
        # The new worker of instance 0 is held back, so its replacement is in flight when the caller goes.
        Block-NewWorker $delayFile
        $caller = Start-ReloadCaller -Name 'abandoned'
        try {
            Wait-Until { (Get-ChildPid $primary).Count -eq 3 -or $caller.HasExited } -Because 'the reload to fork the new worker of instance 0'
            $caller.HasExited | Should -BeFalse -Because "the reload still runs: $(Get-Content -Raw "$($caller.Output).err" -ErrorAction SilentlyContinue)"
            $candidate = @(Get-ChildPid $primary | Where-Object { $_ -notin $before.Values })
            $logLength = (Get-HostLogLine).Count

            Stop-Process -Id $caller.Id -Force # its control connection closes with it
            Wait-Until { @(Get-HostLogLine | Select-Object -Skip $logLength) -match 'The caller of the reload of abandoned went away' } -Because 'the host to see its caller gone'
            Unblock-NewWorker $delayFile
            Wait-Until { (Get-ClusterApp abandoned).Status -ne 'Reloading' } -TimeoutSeconds 15 -Because 'the reload to stop once its caller has gone'
        }
        finally {
            Stop-Process -Id $caller.Id -Force -ErrorAction SilentlyContinue
        }

        $partial = Get-ClusterApp abandoned
        $partial.Status | Should -Be 'PartlyReloaded'
        $partial.ReloadError | Should -BeLike '*partly reloaded*'
        $first = Get-Instance $partial 0
        $second = Get-Instance $partial 1
        $first.Pid | Should -Be $candidate[0] -Because 'the new worker in flight was put in place'
        $first.Generation | Should -Be 2
        $first.Status | Should -Be 'Online'
        $second.Pid | Should -Be $before[1] -Because 'the instance after the one in flight is not touched'
        $second.Generation | Should -Be 1
        $second.Status | Should -Be 'Online'
        Wait-Until { -not (Test-ProcessAlive -Id $before[0]) } -TimeoutSeconds 10 -Because 'the worker replaced in flight to be retired'
        @(Get-ChildPid $primary | Sort-Object) | Should -Be @(@($first.Pid, $second.Pid) | Sort-Object) -Because 'nothing is left half replaced'
        $cancelLog = @(Get-HostLogLine | Select-Object -Skip $logLength)
        @($cancelLog -match '^\s+at |Exception') | Should -BeNullOrEmpty -Because "a caller that goes away is no error of the host: $($cancelLog -join [Environment]::NewLine)"

        Set-Content -Path $delayFile -Value '0'
        $completed = Invoke-ClusterReload -Name abandoned

        $completed.Status | Should -Be 'Online'
        $completed.ReloadError | Should -BeNullOrEmpty
        @($completed.Instances.Generation | Sort-Object -Unique).Count | Should -Be 1 -Because 'every instance runs one generation again'
        @($completed.Instances.Status | Sort-Object -Unique) | Should -Be @('Online')
        foreach ($instance in $completed.Instances) { $instance.Pid | Should -Not -BeIn (@($before.Values) + $candidate) }
        (Get-ClusterApp abandoned).Status | Should -Be 'Online'
    }

    It 'drops a queued reload whose caller goes away before its turn, with no stack trace in the host log' {
        $delayFile = Join-Path $TestHome 'queued.delay'
        $app = Start-TestApp -Script 'server.js' -Name 'queued' -Environment @{ LISTEN_DELAY_FILE = $delayFile } -StartParameters @{ ListenTimeout = 15000 }
        $before = Get-PidMap $app
        $primary = Get-PrimaryPid $before[0]
        Block-NewWorker $delayFile
        $logLength = (Get-HostLogLine).Count
        $first = Start-ReloadCaller -Name 'queued'
        $second = $null
        try {
            Wait-Until { (Get-ChildPid $primary).Count -eq 3 -or $first.HasExited } -Because 'the first reload to fork the new worker of instance 0'
            $second = Start-ReloadCaller -Name 'queued' -Wait
            Wait-Until { @(Get-HostLogLine | Select-Object -Skip $logLength) -match 'Reload of queued waits for the reload under way' -or $second.HasExited } -Because 'the second reload to be queued'
            $second.HasExited | Should -BeFalse -Because "the queued reload waits: $(Get-Content -Raw "$($second.Output).err" -ErrorAction SilentlyContinue)"

            Stop-Process -Id $second.Id -Force
            Wait-Until { @(Get-HostLogLine | Select-Object -Skip $logLength) -match 'The queued reload of queued was dropped' } -Because 'the host to drop the queued reload'
            Unblock-NewWorker $delayFile
            $first.WaitForExit(30000) | Should -BeTrue -Because 'the first reload completes'
            $first.ExitCode | Should -Be 0 -Because (Get-Content -Raw "$($first.Output).err" -ErrorAction SilentlyContinue)
        }
        finally {
            foreach ($caller in $first, $second) { if ($caller) { Stop-Process -Id $caller.Id -Force -ErrorAction SilentlyContinue } }
        }

        # Had the queued reload run, it would begin as soon as the first one ended.
        for ($i = 0; $i -lt 5; $i++) {
            $after = Get-ClusterApp queued
            $after.Status | Should -Be 'Online'
            @($after.Instances.Restarts) | Should -Be @(1, 1) -Because 'only the first reload ran'
            @($after.Instances.Generation) | Should -Be @(2, 2)
            Start-Sleep -Milliseconds 200
        }
        foreach ($instance in $after.Instances) { $instance.Pid | Should -Not -BeIn @($before.Values) }
        $log = @(Get-HostLogLine | Select-Object -Skip $logLength)
        @($log -match '^\s+at |Exception') | Should -BeNullOrEmpty -Because "a caller that goes away is no error of the host: $($log -join [Environment]::NewLine)"
        @($log -match 'queued reload of queued was dropped') | Should -HaveCount 1
    }
}

Describe 'Graceful reload of a fork-mode app' {
    AfterEach { Remove-AllApps }

    # graceful-fork.js takes 2.5 s to finish after 'shutdown': a timeout of 8 s waits for it, one of 1 s does not.
    It "sends 'shutdown' and waits up to the graceful timeout from <Source> (<TimeoutMs> ms)" -ForEach @(
        @{ Source = '-GracefulTimeout'; TimeoutMs = 8000; Waits = $true }
        @{ Source = '-GracefulTimeout'; TimeoutMs = 1000; Waits = $false }
        @{ Source = 'PM2_GRACEFUL_TIMEOUT'; TimeoutMs = 8000; Waits = $true }
        @{ Source = 'PM2_GRACEFUL_TIMEOUT'; TimeoutMs = 1000; Waits = $false }
    ) {
        $marker = Join-Path $TestHome "fork-$([guid]::NewGuid().ToString('n').Substring(0, 6)).txt"
        $name = "fork-$TimeoutMs-$($Source.TrimStart('-').ToLowerInvariant())"
        $before = Start-ClusterApp -Path (Join-Path $Fixtures 'graceful-fork.js') -Name $name -Mode Fork -Instances 2 `
            -Environment @{ MARKER_FILE = $marker; SHUTDOWN_DELAY_MS = '2500' } -ErrorAction Stop
        $oldPids = @($before.Instances.Pid)
        $parameters = @{ Name = $name; WarningAction = 'SilentlyContinue' }
        $previous = $env:PM2_GRACEFUL_TIMEOUT
        if ($Source -eq 'PM2_GRACEFUL_TIMEOUT') { $env:PM2_GRACEFUL_TIMEOUT = "$TimeoutMs" } else { $parameters.GracefulTimeout = $TimeoutMs }
        try {
            $after = Invoke-ClusterGracefulReload @parameters
        }
        finally {
            $env:PM2_GRACEFUL_TIMEOUT = $previous
        }

        $after.Status | Should -Be 'Online'
        foreach ($instance in $after.Instances) { $instance.Pid | Should -Not -BeIn $oldPids }
        $lines = @(Get-Content -Path $marker)
        $hostLog = Get-HostLogLine
        foreach ($oldPid in $oldPids) {
            Test-ProcessAlive -Id $oldPid | Should -BeFalse -Because 'the reload returns once the old process is gone'
            @($lines | Where-Object { $_ -eq "shutdown $oldPid" }).Count | Should -Be 1 -Because "process $oldPid gets the 'shutdown' message once"
            # Past the graceful timeout a retiring process gets SIGINT, then, if it lingers, SIGKILL.
            $killed = @($hostLog -match "\(pid $oldPid\) did not exit (within the graceful timeout|in time)")
            if ($Waits) {
                $lines | Should -Contain "exit $oldPid" -Because "process $oldPid was given the time to finish its work"
                $killed | Should -BeNullOrEmpty
            }
            else {
                $lines | Should -Not -Contain "exit $oldPid" -Because "process $oldPid was killed when the $TimeoutMs ms passed"
                $killed | Should -HaveCount 1
            }
        }
    }
}

Describe 'A host killed while a reload waits for a new worker' {
    AfterEach { Remove-AllApps }

    It 'leaves the old workers serving, and the next host neither promotes the unready worker nor retires the serving ones' {
        $delayFile = Join-Path $TestHome 'steady.delay'
        $app = Start-TestApp -Script 'server.js' -Name 'steady' -Environment @{ LISTEN_DELAY_FILE = $delayFile } -StartParameters @{ ListenTimeout = 20000 }
        $before = Get-PidMap $app
        $primary = Get-PrimaryPid $before[0]
        # The new version never becomes ready.
        Set-Content -Path $delayFile -Value 'never'
        $load = Start-LoadClient -Port $app.Port -Concurrency 4 -MaxSeconds 40
        $caller = Start-ReloadCaller -Name 'steady'
        try {
            Wait-Until { (Get-ChildPid $primary).Count -eq 3 -or $caller.HasExited } -Because 'the reload to fork the new worker of instance 0'
            $candidate = @(Get-ChildPid $primary | Where-Object { $_ -notin $before.Values })
            $candidate.Count | Should -Be 1

            $oldHost = Stop-HostWithSigkill
        }
        finally {
            $withoutHost = Stop-LoadClient -Client $load
            Stop-Process -Id $caller.Id -Force -ErrorAction SilentlyContinue
        }
        $load = Start-LoadClient -Port $app.Port -Concurrency 4 -MaxSeconds 40
        try {
            $adopted = Get-ClusterApp steady # starts the next host
            (Get-ClusterHost).Pid | Should -Not -Be $oldHost
            Wait-Until { -not (Test-ProcessAlive -Id $candidate[0]) } -TimeoutSeconds 15 -Because 'the next host to stop the worker that never became ready'
            # A while of the next host's supervision: no crash loop, nothing replaced.
            $seen = [System.Collections.Generic.List[object]]::new()
            for ($i = 0; $i -lt 10; $i++) {
                $seen.Add((Get-ClusterApp steady))
                Start-Sleep -Milliseconds 200
            }
        }
        finally {
            $withHost = Stop-LoadClient -Client $load
        }

        Write-Host "Without a host: $($withoutHost['ok']) answered, $($withoutHost['failed']) failed; after adoption: $($withHost['ok']) answered, $($withHost['failed']) failed"
        $withoutHost['failed'] | Should -Be 0 -Because "the old workers serve while there is no host (errors: $($withoutHost['errors'] | ConvertTo-Json -Compress))"
        $withHost['failed'] | Should -Be 0 -Because "the next host leaves the serving workers alone (errors: $($withHost['errors'] | ConvertTo-Json -Compress))"
        @($withHost['pids'].Keys | ForEach-Object { [int] $_ } | Sort-Object) | Should -Be @($before.Values | Sort-Object)
        foreach ($snapshot in @($adopted) + $seen) {
            foreach ($instance in $snapshot.Instances) {
                $instance.Pid | Should -Be $before[$instance.Instance] -Because 'the serving worker stays in place'
                $instance.Status | Should -Be 'Online'
                $instance.Restarts | Should -Be 0
                $instance.Generation | Should -Be 1
            }
            $snapshot.Status | Should -Be 'PartlyReloaded' -Because 'the reload did not complete, and the app says so'
            $snapshot.ReloadError | Should -BeLike '*reload was under way*'
        }
        @(Get-ChildPid $primary | Sort-Object) | Should -Be @($before.Values | Sort-Object) -Because 'the primary runs the serving workers only'

        Set-Content -Path $delayFile -Value '0'
        $completed = Invoke-ClusterReload -Name steady
        $completed.Status | Should -Be 'Online'
        @($completed.Instances.Generation) | Should -Be @(2, 2)
    }

    It 'lets the next host keep a new worker that became ready while there was no host, and retire the old one without a failed request' {
        $delayFile = Join-Path $TestHome 'catching-up.delay'
        $app = Start-TestApp -Script 'server.js' -Name 'catching-up' -Environment @{ LISTEN_DELAY_FILE = $delayFile } -StartParameters @{ ListenTimeout = 20000 }
        $before = Get-PidMap $app
        $primary = Get-PrimaryPid $before[0]
        Block-NewWorker $delayFile
        $load = Start-LoadClient -Port $app.Port -Concurrency 4 -MaxSeconds 40
        $caller = Start-ReloadCaller -Name 'catching-up'
        try {
            Wait-Until { (Get-ChildPid $primary).Count -eq 3 -or $caller.HasExited } -Because 'the reload to fork the new worker of instance 0'
            $candidate = @(Get-ChildPid $primary | Where-Object { $_ -notin $before.Values })
            $candidate.Count | Should -Be 1
            $null = Stop-HostWithSigkill
            Unblock-NewWorker $delayFile
            Wait-Until { (Invoke-TestRequest -Port $app.Port).pid -eq $candidate[0] } -TimeoutSeconds 15 -Because 'the new worker to listen while there is no host'

            $adopted = Get-ClusterApp catching-up # starts the next host
            Wait-Until { -not (Test-ProcessAlive -Id $before[0]) } -TimeoutSeconds 15 -Because 'the next host to retire the worker the ready one replaces'
        }
        finally {
            $result = Stop-LoadClient -Client $load
            Stop-Process -Id $caller.Id -Force -ErrorAction SilentlyContinue
        }

        Write-Host "$($result['ok']) answered, $($result['failed']) failed"
        $result['failed'] | Should -Be 0 -Because "the old worker is retired gracefully (errors: $($result['errors'] | ConvertTo-Json -Compress))"
        $first = Get-Instance $adopted 0
        $first.Pid | Should -Be $candidate[0]
        $first.Generation | Should -Be 2
        $first.Restarts | Should -Be 1
        $first.Status | Should -Be 'Online'
        $second = Get-Instance $adopted 1
        $second.Pid | Should -Be $before[1]
        $second.Generation | Should -Be 1
        $second.Restarts | Should -Be 0
        $adopted.Status | Should -Be 'PartlyReloaded'
        @(Get-ChildPid $primary | Sort-Object) | Should -Be @(@($candidate[0], $before[1]) | Sort-Object)

        Set-Content -Path $delayFile -Value '0'
        $completed = Invoke-ClusterReload -Name catching-up
        $completed.Status | Should -Be 'Online'
        @($completed.Instances.Generation | Sort-Object -Unique).Count | Should -Be 1
    }
}

Describe 'Adoption' {
    AfterEach { Remove-AllApps }

    It 'keeps the restart counters and generations of the workers it takes back' {
        $app = Start-TestApp -Script 'server.js' -Name 'counted'
        $victim = (Get-Instance $app 1).Pid
        Stop-Process -Id $victim -Force
        Wait-Until { $i = Get-Instance (Get-ClusterApp counted) 1; $i.Status -eq 'Online' -and $i.Pid -and $i.Pid -ne $victim } -Because 'the killed instance to be restarted'
        $reloaded = Invoke-ClusterReload -Name counted
        $reloaded.Status | Should -Be 'Online'
        @($reloaded.Instances.Restarts) | Should -Be @(1, 2) -Because 'instance 1 was restarted once, and the reload replaced both'
        @($reloaded.Instances.Generation) | Should -Be @(2, 2)

        $null = Stop-HostWithSigkill
        $adopted = Get-ClusterApp counted

        $adopted.Status | Should -Be 'Online'
        foreach ($instance in $adopted.Instances) {
            $was = Get-Instance $reloaded $instance.Instance
            $instance.Pid | Should -Be $was.Pid -Because 'the next host takes back the running workers'
            $instance.Restarts | Should -Be $was.Restarts
            $instance.Generation | Should -Be $was.Generation
            $instance.Status | Should -Be 'Online'
        }
    }
}

Describe 'An instance whose log cannot be opened' {
    AfterEach { Remove-AllApps }

    It 'is not started: Start-ClusterApp fails naming the log, and no worker of the app runs' {
        # A running app keeps the Node primary alive, as it would share it with the new one.
        $neighbour = Start-TestApp -Script 'server.js' -Name 'neighbour' -Instances 1
        # A folder where the error log of instance 0 would be: the primary cannot open it as a file.
        $blocked = Join-Path $TestHome 'logs/unloggable-0.err.log'
        New-Item -ItemType Directory -Path $blocked | Out-Null
        $port = Get-FreePort
        try {
            $failure = Get-Failure {
                Start-ClusterApp -Path (Join-Path $Fixtures 'server.js') -Name unloggable -Instances 1 -Environment @{ PORT = "$port" } -ErrorAction Stop
            }
            $failure.FullyQualifiedErrorId | Should -Be 'StartClusterAppInstanceExited,Cluster.Commands.StartClusterAppCommand'
            $failure.Exception.Message | Should -BeLike "*could not start*$blocked*"
            @(Get-ClusterApp | Where-Object Name -EQ 'unloggable') | Should -BeNullOrEmpty
            $workers = @(Get-Process -Name node -ErrorAction SilentlyContinue | Where-Object {
                    try { [IO.File]::ReadAllText("/proc/$($_.Id)/environ").Contains("PORT=$port") } catch { $false }
                })
            $workers | Should -BeNullOrEmpty -Because 'a worker whose log could not be opened is not left running'
            { Invoke-TestRequest -Port $port } | Should -Throw -Because 'nothing serves the app that was not started'
            @(Get-ChildPid (Get-PrimaryPid $neighbour.Instances[0].Pid)) | Should -Be @($neighbour.Instances[0].Pid)
            (Get-ClusterApp neighbour).Status | Should -Be 'Online'
        }
        finally {
            Remove-Item -LiteralPath $blocked -Force
        }
    }
}

Describe 'A full file system under CLUSTER_HOME' {
    It 'refuses a stop and a start it cannot save, says what really runs, and works again once there is space' {
        if (-not $IsLinux -or (& id -u) -ne '0') {
            Set-ItResult -Skipped -Because 'mounting a small tmpfs as CLUSTER_HOME needs root on Linux'
            return
        }
        $mount = Join-Path ([IO.Path]::GetTempPath()) ('cl-full-' + [guid]::NewGuid().ToString('n').Substring(0, 6))
        New-Item -ItemType Directory -Path $mount | Out-Null
        # Room for the host's runtime copy (CLUSTER_HOME/runtime/<version>) and 2 MB for the state and logs.
        $hosts = Join-Path (Split-Path $env:CLUSTER_MODULE_PATH) 'hosts'
        $runtimeBytes = (Get-ChildItem -LiteralPath $hosts -Recurse -File | Measure-Object -Property Length -Sum).Sum
        $sizeMB = [math]::Ceiling($runtimeBytes / 1MB) + 2
        $mounted = & mount -t tmpfs -o "size=$($sizeMB)m,mode=0700" tmpfs $mount 2>&1
        if ($LASTEXITCODE) {
            Remove-Item -LiteralPath $mount
            Set-ItResult -Skipped -Because "a tmpfs could not be mounted as CLUSTER_HOME: $mounted"
            return
        }
        $suiteHome = $env:CLUSTER_HOME
        $env:CLUSTER_HOME = $mount
        try {
            $app = Start-TestApp -Script 'server.js' -Name 'ondisk'
            $pids = @($app.Instances.Pid)
            $filler = Join-Path $mount 'filler'
            $null = & dd if=/dev/zero "of=$filler" bs=64k 2>&1
            { [IO.File]::WriteAllText((Join-Path $mount 'probe'), 'x' * 8192) } | Should -Throw -Because 'the file system is full'

            $stopFailure = Get-Failure { Stop-ClusterApp -Name ondisk -ErrorAction Stop }
            $stopFailure.FullyQualifiedErrorId | Should -Be 'StopClusterAppStateNotSaved,Cluster.Commands.StopClusterAppCommand'
            $stopFailure.CategoryInfo.Category | Should -Be 'WriteError'
            $stopFailure.Exception.Message | Should -BeLike '*could not write its state file*'
            foreach ($refused in @(
                    @{ Id = 'RestartClusterAppStateNotSaved,Cluster.Commands.RestartClusterAppCommand'; Command = { Restart-ClusterApp -Name ondisk -ErrorAction Stop } }
                    @{ Id = 'RemoveClusterAppStateNotSaved,Cluster.Commands.RemoveClusterAppCommand'; Command = { Remove-ClusterApp -Name ondisk -Confirm:$false -ErrorAction Stop } }
                    @{ Id = 'SetClusterAppStateNotSaved,Cluster.Commands.SetClusterAppCommand'; Command = { Set-ClusterApp -Name ondisk -Instances 1 -ErrorAction Stop } }
                )) {
                (Get-Failure $refused.Command).FullyQualifiedErrorId | Should -Be $refused.Id
            }
            $running = Get-ClusterApp ondisk
            $running.Status | Should -Be 'Online' -Because 'every change was refused, so the app still runs as it did'
            @($running.Instances.Pid) | Should -Be $pids
            @(Get-Answer -Port $app.Port -ExpectedPid $pids).pid | Sort-Object -Unique | Should -Be @($pids | Sort-Object)

            $ghostPort = Get-FreePort
            $startFailure = Get-Failure {
                Start-ClusterApp -Path (Join-Path $Fixtures 'server.js') -Name ghost -Instances 2 -Environment @{ PORT = "$ghostPort" } -ErrorAction Stop
            }
            $startFailure.FullyQualifiedErrorId | Should -Be 'StartClusterAppStateNotSaved,Cluster.Commands.StartClusterAppCommand'
            $startFailure.Exception.Message | Should -BeLike '*could not write its state file*'
            @(Get-ClusterApp).Name | Should -Be @('ondisk') -Because 'an app that could not be saved is not registered'
            { Invoke-TestRequest -Port $ghostPort } | Should -Throw -Because 'no worker of the refused app runs'
            $primary = Get-PrimaryPid $pids[0]
            @(Get-ChildPid $primary | Sort-Object) | Should -Be @($pids | Sort-Object)

            Remove-Item -LiteralPath $filler
            Stop-ClusterApp -Name ondisk
            (Get-ClusterApp ondisk).Status | Should -Be 'Stopped'
            foreach ($stopped in $pids) { Test-ProcessAlive -Id $stopped | Should -BeFalse }
            $ghost = Start-TestApp -Script 'server.js' -Name ghost
            $ghost.Status | Should -Be 'Online'
            $saved = Get-Content -Raw (Join-Path $mount 'state.json') | ConvertFrom-Json
            @($saved.apps.spec.name | Sort-Object) | Should -Be @('ghost', 'ondisk')
        }
        finally {
            Remove-TestClusterHome $mount
            $env:CLUSTER_HOME = $suiteHome
            & umount $mount 2>&1 | Out-Null
            if ($LASTEXITCODE) { & umount -l $mount 2>&1 | Out-Null }
            Remove-Item -LiteralPath $mount -Recurse -Force -ErrorAction SilentlyContinue
        }
    }
}
