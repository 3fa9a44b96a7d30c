#Requires -Version 7.0
# Resilience end to end: the state file, a host killed with SIGKILL and brought back, Stop-ClusterHost and
# Get-ClusterHost, scaling (also under keep-alive load), the restart policy options, -MaxMemoryRestart, and
# instance logs across reloads, rotation and -Follow. Real host, real Node apps of tests/fixtures/resilience on
# 127.0.0.1. Run by build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    # The folder is left for Cluster to create, as it is for a user who never made one.
    $script:TestHome = New-TestClusterHome
    Remove-Item -LiteralPath $TestHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/resilience')).Path
    $script:Logs = Join-Path $TestHome 'logs'
    $script:PSDefaultParameterValues = @{ 'Start-TestApp:Fixtures' = $Fixtures }

    # Instance number -> pid.
    function Get-PidMap([string] $Name) {
        $map = @{}
        foreach ($instance in (Get-ClusterApp $Name -ErrorAction Stop).Instances) { $map[[int] $instance.Instance] = $instance.Pid }
        $map
    }

    function Get-Instance([string] $Name, [int] $Instance) {
        (Get-ClusterApp $Name -ErrorAction Stop).Instances | Where-Object Instance -EQ $Instance
    }

    # Every process that runs with this suite's CLUSTER_HOME in its environment (the host, Node primaries and
    # workers inherit it), apart from this test process itself.
    function Get-HomeProcessId {
        $marker = "CLUSTER_HOME=$TestHome"
        foreach ($entry in Get-ChildItem /proc -Directory -ErrorAction SilentlyContinue) {
            $id = $entry.Name -as [int]
            if (-not $id -or $id -eq $PID) { continue }
            try {
                $variables = [IO.File]::ReadAllText("/proc/$id/environ").Split([char] 0)
            }
            catch {
                continue # gone meanwhile, or a kernel thread
            }
            if ($variables -contains $marker) { $id }
        }
    }

    # The host log's lines written by the host with this pid (from its "started" line on).
    function Get-HostLogOf([int] $HostPid) {
        $lines = @(Get-Content (Join-Path $Logs 'host.log'))
        $start = -1
        for ($i = 0; $i -lt $lines.Count; $i++) {
            if ($lines[$i] -match "started: pid $HostPid\b") { $start = $i }
        }
        if ($start -lt 0) { return @() }
        $lines[$start..($lines.Count - 1)]
    }

    # The numbers of the "tick <pid> <n>" lines, per pid.
    function Get-TickNumbers([string] $Path) {
        $ticks = @{}
        foreach ($line in Get-LogText $Path) {
            if ($line -match '^tick (\d+) (\d+)$') {
                $tickPid = [int] $Matches[1]
                if (-not $ticks.ContainsKey($tickPid)) { $ticks[$tickPid] = [System.Collections.Generic.List[int]]::new() }
                $ticks[$tickPid].Add([int] $Matches[2])
            }
        }
        $ticks
    }

    function Remove-AllApps {
        Get-ClusterApp -ErrorAction SilentlyContinue | Remove-ClusterApp -Confirm:$false -ErrorAction SilentlyContinue
    }
}

AfterAll {
    Remove-TestClusterHome $TestHome
}

Describe 'Persistence' {
    AfterAll { Remove-AllApps }

    It 'saves the app, with its script and environment, to a state file only its owner can read' -Skip:$IsWindows {
        $secret = "secret-$([guid]::NewGuid().ToString('n'))"
        $null = Start-TestApp -Script 'server.js' -Name saved -Instances 2 -Environment @{ CLUSTER_TEST_SECRET = $secret }
        $stateFile = Join-Path $TestHome 'state.json'

        $stateFile | Should -Exist
        "$stateFile.tmp" | Should -Not -Exist
        (Get-Item $stateFile).UnixFileMode | Should -Be ([IO.UnixFileMode] 'UserRead, UserWrite')
        $state = Get-Content -Raw $stateFile | ConvertFrom-Json -AsHashtable
        $saved = @($state['apps'] | Where-Object { $_['spec']['name'] -eq 'saved' })
        $saved.Count | Should -Be 1
        $saved[0]['spec']['script'] | Should -Be (Join-Path $Fixtures 'server.js')
        $saved[0]['spec']['instances'] | Should -Be 2
        $saved[0]['spec']['environment']['CLUSTER_TEST_SECRET'] | Should -Be $secret
    }

    It 'saves every change as it happens: a scale and a stop' -Skip:$IsWindows {
        if (-not (Get-ClusterApp saved -ErrorAction SilentlyContinue)) { $null = Start-TestApp -Script 'server.js' -Name saved -Instances 2 }
        $stateFile = Join-Path $TestHome 'state.json'
        function Get-SavedApp { @((Get-Content -Raw $stateFile | ConvertFrom-Json -AsHashtable)['apps'] | Where-Object { $_['spec']['name'] -eq 'saved' })[0] }

        Set-ClusterApp -Name saved -Instances 1
        (Get-SavedApp)['spec']['instances'] | Should -Be 1
        (Get-SavedApp)['stopped'] | Should -BeFalse

        Stop-ClusterApp -Name saved
        (Get-SavedApp)['stopped'] | Should -BeTrue
        (Get-Item $stateFile).UnixFileMode | Should -Be ([IO.UnixFileMode] 'UserRead, UserWrite')
    }

    It 'keeps CLUSTER_HOME and its logs folder readable by the owner only' -Skip:$IsWindows {
        $null = Get-ClusterHost

        (Get-Item $TestHome).UnixFileMode | Should -Be ([IO.UnixFileMode] 'UserRead, UserWrite, UserExecute')
        (Get-Item $Logs).UnixFileMode | Should -Be ([IO.UnixFileMode] 'UserRead, UserWrite, UserExecute')
    }
}

Describe 'The host' {
    AfterEach { Remove-AllApps }

    It 'describes itself: pid, version, start time, uptime, CLUSTER_HOME, endpoint, app count and memory' {
        $null = Start-TestApp -Script 'server.js' -Name one -Instances 1
        $null = Start-TestApp -Script 'server.js' -Name two -Instances 1

        $clusterHost = Get-ClusterHost

        $clusterHost.Pid | Should -Not -Be $PID
        Test-ProcessAlive -Id $clusterHost.Pid | Should -BeTrue
        (Get-Process -Id $clusterHost.Pid).CommandLine | Should -BeLike "*--home $TestHome*"
        $clusterHost.Home | Should -Be $TestHome
        $clusterHost.Endpoint | Should -Be (Join-Path $TestHome 'host.sock')
        $clusterHost.AppCount | Should -Be 2
        $clusterHost.Version | Should -Be (Get-Module Cluster).Version.ToString()
        $clusterHost.StartTime | Should -BeLessThan (Get-Date)
        $clusterHost.Uptime | Should -BeGreaterThan ([TimeSpan]::Zero)
        $clusterHost.MemoryBytes | Should -BeGreaterThan 0
    }

    It 'comes back after SIGKILL: the next cmdlet starts a new host that brings back running apps and keeps stopped ones stopped' {
        $running = Start-TestApp -Script 'server.js' -Name back -Instances 2
        $null = Start-TestApp -Script 'server.js' -Name parked -Instances 1
        Stop-ClusterApp -Name parked
        $oldHost = Get-ClusterHost

        Stop-Process -Id $oldHost.Pid -Force # SIGKILL on Unix
        Wait-Until { -not (Test-ProcessAlive -Id $oldHost.Pid) } -Because 'the host to die of SIGKILL'

        $apps = @(Get-ClusterApp)
        $newHost = Get-ClusterHost
        $newHost.Pid | Should -Not -Be $oldHost.Pid
        @($apps.Name | Sort-Object) | Should -Be @('back', 'parked') -Because 'the first cmdlet after the crash already sees every saved app'

        Wait-Until { (Get-ClusterApp back).Status -eq 'Online' } -TimeoutSeconds 30 -Because "'back' to be brought back online"
        $back = Get-ClusterApp back
        $back.Instances.Count | Should -Be 2
        @($back.Instances.Status | Sort-Object -Unique) | Should -Be @('Online')
        $backPids = @($back.Instances.Pid)
        Get-AnsweringPid -Port $running.Port -ExpectedPid $backPids | Should -Be @($backPids | Sort-Object)

        $parked = Get-ClusterApp parked
        $parked.Status | Should -Be 'Stopped'
        @($parked.Instances | Where-Object Pid) | Should -BeNullOrEmpty

        $newLog = Get-HostLogOf $newHost.Pid
        $newLog | Should -Not -BeNullOrEmpty -Because 'the new host logs its start'
        # Started again, or taken back with the workers that kept serving while there was no host.
        ($newLog -match 'Bringing back back|Took back back:') | Should -Not -BeNullOrEmpty -Because 'the new host reports the app it brought back'
        ($newLog -match 'Bringing parked back|Took back parked:') | Should -BeNullOrEmpty -Because 'a stopped app is not started again'
    }

    It 'keeps the apps serving while no host runs, and the next host takes back the same workers' {
        $serving = Start-TestApp -Script 'server.js' -Name serving -Instances 2
        $workers = @($serving.Instances.Pid | Sort-Object)
        $oldHost = Get-ClusterHost

        Stop-Process -Id $oldHost.Pid -Force # SIGKILL on Unix
        Wait-Until { -not (Test-ProcessAlive -Id $oldHost.Pid) } -Because 'the host to die of SIGKILL'

        # No host is running now, and both workers still answer on the app's port.
        Get-AnsweringPid -Port $serving.Port -ExpectedPid $workers | Should -Be $workers

        $after = Get-ClusterApp serving
        (Get-ClusterHost).Pid | Should -Not -Be $oldHost.Pid
        $after.Status | Should -Be 'Online'
        @($after.Instances.Pid | Sort-Object) | Should -Be $workers -Because 'the new host adopts the workers instead of starting new ones'
        @($after.Instances.Restarts) | Should -Be @(0, 0)
        (Get-HostLogOf (Get-ClusterHost).Pid) -match 'Took back serving: 2 workers' | Should -Not -BeNullOrEmpty

        # The adopted workers are the app's as before: a reload replaces them.
        $reloaded = Invoke-ClusterReload -Name serving
        foreach ($worker in $workers) { $reloaded.Instances.Pid | Should -Not -Contain $worker }
        Wait-Until { -not ($workers | Where-Object { Test-ProcessAlive -Id $_ }) } -Because 'the adopted workers to be retired by the reload'
    }

    It 'Stop-ClusterHost stops the host and every Node process of this CLUSTER_HOME; the next host leaves the apps stopped until Restart-ClusterApp' -Skip:(-not $IsLinux) {
        $lasting = Start-TestApp -Script 'server.js' -Name lasting -Instances 2
        $clusterHost = Get-ClusterHost
        $workers = @($lasting.Instances.Pid)
        $before = @(Get-HomeProcessId)
        $before | Should -Contain $clusterHost.Pid
        foreach ($worker in $workers) { $before | Should -Contain $worker }
        $primaries = @(Get-Process -Name node -ErrorAction SilentlyContinue | Where-Object { $_.Parent -and $_.Parent.Id -eq $clusterHost.Pid })
        $primaries | Should -Not -BeNullOrEmpty -Because 'the host runs a Node primary'

        Stop-ClusterHost -Confirm:$false

        Test-ProcessAlive -Id $clusterHost.Pid | Should -BeFalse
        foreach ($id in @($workers) + @($primaries.Id)) { Test-ProcessAlive -Id $id | Should -BeFalse -Because "process $id belonged to the stopped host" }
        Wait-Until { @(Get-HomeProcessId).Count -eq 0 } -TimeoutSeconds 10 -Because 'no process of this CLUSTER_HOME to be left'
        "$TestHome/state.json" | Should -Exist

        $back = Get-ClusterApp lasting
        (Get-ClusterHost).Pid | Should -Not -Be $clusterHost.Pid
        $back | Should -Not -BeNullOrEmpty
        $back.Status | Should -Be 'Stopped' -Because 'Stop-ClusterHost stopped it on purpose, and a read-only cmdlet started this host'
        @($back.Instances | Where-Object Pid).Count | Should -Be 0

        Restart-ClusterApp -Name lasting
        Wait-Until { (Get-ClusterApp lasting).Status -eq 'Online' } -TimeoutSeconds 30 -Because "'lasting' to be started again"
        $pids = @((Get-ClusterApp lasting).Instances.Pid)
        $pids.Count | Should -Be 2
        Get-AnsweringPid -Port $lasting.Port -ExpectedPid $pids | Should -Be @($pids | Sort-Object)
    }
}

Describe 'Scaling' {
    BeforeAll {
        $script:Scaled = Start-TestApp -Script 'server.js' -Name scaled -Instances 2
    }
    AfterAll { Remove-AllApps }

    It 'grows from 2 to 4 instances: instances 2 and 3 are added, all answer, 0 and 1 are untouched' {
        $before = Get-PidMap scaled

        $app = Set-ClusterApp -Name scaled -Instances 4 -PassThru

        @($app.Instances.Instance | Sort-Object) | Should -Be @(0, 1, 2, 3)
        @($app.Instances.Status | Sort-Object -Unique) | Should -Be @('Online')
        $after = Get-PidMap scaled
        $after[0] | Should -Be $before[0]
        $after[1] | Should -Be $before[1]
        $after[2] | Should -Not -BeNullOrEmpty
        $after[3] | Should -Not -BeNullOrEmpty
        $pids = @($after.Values)
        @($pids | Sort-Object -Unique).Count | Should -Be 4
        Get-AnsweringPid -Port $Scaled.Port -ExpectedPid $pids | Should -Be @($pids | Sort-Object)
    }

    It "shrinks from 4 to 1 instance: instances 1 to 3 get 'shutdown' and go, instance 0 is untouched" {
        if ((Get-ClusterApp scaled).Instances.Count -ne 4) { Set-ClusterApp -Name scaled -Instances 4 }
        $before = Get-PidMap scaled

        $app = Set-ClusterApp -Name scaled -Instances 1 -PassThru

        @($app.Instances.Instance) | Should -Be @(0)
        (Get-PidMap scaled)[0] | Should -Be $before[0]
        (Get-Instance scaled 0).Status | Should -Be 'Online'
        foreach ($retired in 1..3) {
            Test-ProcessAlive -Id $before[$retired] | Should -BeFalse -Because "instance $retired was retired"
            $log = Get-Content -Raw (Join-Path $Logs "scaled-$retired.out.log")
            $log | Should -Match "shutdown $($before[$retired]) instance $retired" -Because "instance $retired is retired gracefully, with the 'shutdown' message"
        }
        Get-Content -Raw (Join-Path $Logs 'scaled-0.out.log') | Should -Not -Match 'shutdown'
        (Invoke-TestRequest -Port $Scaled.Port).pid | Should -Be $before[0]
    }

    It 'shrinks under keep-alive load without losing a request' {
        $loaded = Start-TestApp -Script 'server.js' -Name loaded -Instances 3
        $before = Get-PidMap loaded
        $load = Start-LoadClient -Port $loaded.Port -Concurrency 4 -MaxSeconds 60 -ReadyAfter 200
        try {
            $app = Set-ClusterApp -Name loaded -Instances 1 -PassThru
            @($app.Instances.Instance) | Should -Be @(0)
            # Let the load go on against the one instance left before it stops.
            $served = (Invoke-TestRequest -Port $loaded.Port).pid
            $served | Should -Be $before[0]
        }
        finally {
            $result = Stop-LoadClient -Client $load
        }

        $result['ok'] | Should -BeGreaterThan 200
        $result['failed'] | Should -Be 0 -Because "no request may fail while instances retire: $($result['errors'] | ConvertTo-Json -Compress)"
        foreach ($retired in 1..2) {
            $result['pids'].Keys | Should -Contain "$($before[$retired])" -Because "the load reached instance $retired before it was retired"
            Test-ProcessAlive -Id $before[$retired] | Should -BeFalse
        }
    }
}

Describe 'Restart policy' {
    AfterEach { Remove-AllApps }

    It 'with -NoAutoRestart, leaves a killed instance stopped while an app with restarts on brings its own back' {
        $null = Start-TestApp -Script 'server.js' -Name manual -Instances 2 -StartParameters @{ NoAutoRestart = $true }
        $null = Start-TestApp -Script 'server.js' -Name automatic -Instances 1
        $manualVictim = (Get-Instance manual 1).Pid
        $automaticVictim = (Get-Instance automatic 0).Pid

        Stop-Process -Id $manualVictim, $automaticVictim -Force

        # The app that restarts is the yardstick: once its instance is back, the supervisor has handled both exits.
        Wait-Until { $i = Get-Instance automatic 0; $i.Status -eq 'Online' -and $i.Pid -and $i.Pid -ne $automaticVictim } -TimeoutSeconds 30 -Because 'the killed instance of an app with restarts on to come back'
        Wait-Until { (Get-Instance manual 1).Status -eq 'Stopped' } -TimeoutSeconds 10 -Because 'the killed instance to be seen as stopped'
        $instance = Get-Instance manual 1
        $instance.Status | Should -Be 'Stopped'
        $instance.Pid | Should -BeNullOrEmpty
        $instance.Restarts | Should -Be 0
        $instance.LastSignal | Should -Be 'SIGKILL'
        (Get-Instance manual 0).Status | Should -Be 'Online'
        Test-ProcessAlive -Id $manualVictim | Should -BeFalse
    }

    It 'errors an instance that keeps crashing before -MinUptime once -MaxRestarts is reached' {
        $null = Start-TestApp -Script 'crash-after-listen.js' -Name crashy -Instances 1 -StartParameters @{ MaxRestarts = 3; MinUptime = 10000; RestartDelay = 0 }

        Wait-Until { (Get-ClusterApp crashy).Status -eq 'Errored' } -TimeoutSeconds 40 -Because 'the crash loop to end in the Errored state'

        $instance = Get-Instance crashy 0
        $instance.Status | Should -Be 'Errored'
        $instance.Pid | Should -BeNullOrEmpty
        $instance.Restarts | Should -BeGreaterOrEqual 1
        $instance.Restarts | Should -BeLessOrEqual 3
        $instance.LastExitCode | Should -Be 1
    }

    It 'keeps restarting a crashing instance whose runs last longer than -MinUptime' {
        $null = Start-TestApp -Script 'crash-after-listen.js' -Name steadycrash -Instances 1 -StartParameters @{ MaxRestarts = 2; MinUptime = 50; RestartDelay = 0 }

        Wait-Until { (Get-Instance steadycrash 0).Restarts -ge 4 } -TimeoutSeconds 40 -Because 'runs longer than -MinUptime not to count towards -MaxRestarts'

        (Get-ClusterApp steadycrash).Status | Should -Not -Be 'Errored'
    }

    It 'replaces an instance over -MaxMemoryRestart by a reload of that instance alone' {
        $growOnce = Join-Path $TestHome "grown-$([guid]::NewGuid().ToString('n'))"
        $hungry = Start-TestApp -Script 'grow.js' -Name hungry -Instances 2 -Environment @{ GROW_ONCE_FILE = $growOnce } -StartParameters @{ MaxMemoryRestart = 150MB }
        $before = Get-PidMap hungry

        Wait-Until { $i = Get-Instance hungry 0; $i.Restarts -ge 1 -and $i.Pid -and $i.Pid -ne $before[0] } -TimeoutSeconds 60 -Because 'instance 0 to be replaced once over its memory limit'

        $grown = Get-Instance hungry 0
        $grown.Pid | Should -Not -Be $before[0]
        $grown.Restarts | Should -BeGreaterOrEqual 1
        $answers = @(for ($i = 0; $i -lt 20; $i++) { Invoke-TestRequest -Port $hungry.Port })
        $fromReplacement = @($answers | Where-Object pid -EQ $grown.Pid)
        $fromReplacement | Should -Not -BeNullOrEmpty -Because 'the replacement serves requests'
        $fromReplacement[0].instance | Should -Be 0 -Because 'the replacement runs with the same NODE_APP_INSTANCE'
        $steady = Get-Instance hungry 1
        $steady.Pid | Should -Be $before[1]
        $steady.Restarts | Should -Be 0
        $steady.Status | Should -Be 'Online'
        Wait-Until { -not (Test-ProcessAlive -Id $before[0]) } -TimeoutSeconds 15 -Because 'the replaced worker to be retired'
        (Get-Content (Join-Path $Logs 'host.log')) -match "Instance 0 of hungry \(pid $($before[0])\) uses \d+ bytes, over its limit" | Should -Not -BeNullOrEmpty
    }
}

Describe 'Instance logs' {
    AfterEach { Remove-AllApps }

    It 'keeps every line of the old and the new worker of an instance across a reload' {
        $null = Start-TestApp -Script 'ticker.js' -Name ticking -Instances 1
        $log = Join-Path $Logs 'ticking-0.out.log'
        $oldPid = (Get-Instance ticking 0).Pid
        Wait-Until { $t = Get-TickNumbers $log; $t.ContainsKey($oldPid) -and $t[$oldPid].Count -ge 20 } -Because 'the first worker to write its lines'

        $null = Invoke-ClusterReload -Name ticking
        $newPid = (Get-Instance ticking 0).Pid
        $newPid | Should -Not -Be $oldPid
        Wait-Until { $t = Get-TickNumbers $log; $t.ContainsKey($newPid) -and $t[$newPid].Count -ge 20 } -Because 'the new worker to write to the same log'
        Test-ProcessAlive -Id $oldPid | Should -BeFalse

        $ticks = Get-TickNumbers $log
        foreach ($worker in $oldPid, $newPid) {
            $numbers = $ticks[$worker]
            # Lines 1..n with none missing: n lines, the last one numbered n.
            $numbers[0] | Should -Be 1
            $numbers[$numbers.Count - 1] | Should -Be $numbers.Count -Because "no line of pid $worker may be lost"
        }
    }

    It 'rotates a log past -LogMaxSize, keeping -LogFileCount files' {
        $null = Start-TestApp -Script 'chatty.js' -Name chatty -Instances 1 -Environment @{ CHATTY_LINES = '3000' } -StartParameters @{ LogMaxSize = 20000; LogFileCount = 2 }
        $log = Join-Path $Logs 'chatty-0.out.log'
        # 3000 lines of 100 bytes: 300000 bytes, 15 files' worth; every line is in the current file or a kept one.
        Wait-Until { @(Get-LogText "$log*" | Where-Object { $_ -like 'chatty 3000 *' }).Count -eq 1 } -TimeoutSeconds 60 -Because 'the app to write all its lines'

        "$log.1" | Should -Exist
        "$log.2" | Should -Exist
        "$log.3" | Should -Not -Exist
        @(Get-ChildItem (Join-Path $Logs 'chatty-0.out.log*')).Count | Should -Be 3
        foreach ($file in Get-ChildItem (Join-Path $Logs 'chatty-0.out.log*')) {
            $file.Length | Should -BeLessOrEqual 30000 -Because "$($file.Name) is rotated at 20000 bytes"
        }
        # The kept files hold the last lines, in order, none missing.
        $numbers = @(Get-LogText "$log.2", "$log.1", $log | ForEach-Object { [int] ($_ -split ' ')[1] })
        $numbers[$numbers.Count - 1] | Should -Be 3000
        $numbers[0] | Should -BeGreaterThan 600 -Because 'older files were dropped, not kept'
        $numbers.Count | Should -Be (3000 - $numbers[0] + 1)
    }

    It 'Get-ClusterAppLog -Follow streams a line written after it started, until stopped' {
        $app = Start-TestApp -Script 'server.js' -Name followed -Instances 1
        $marker = "followed-line-$([guid]::NewGuid().ToString('n'))"
        $shell = [powershell]::Create()
        $output = [System.Management.Automation.PSDataCollection[psobject]]::new()
        # Enumerating an open PSDataCollection waits for it to close: read it by index instead.
        function Get-Streamed { for ($i = 0; $i -lt $output.Count; $i++) { $output[$i] } }
        $stopped = $false
        try {
            $null = $shell.AddScript({
                    param($ModulePath)
                    Import-Module $ModulePath
                    Get-ClusterAppLog -Name followed -Follow -Tail 1
                }).AddArgument($env:CLUSTER_MODULE_PATH)
            $invocation = $shell.BeginInvoke([System.Management.Automation.PSDataCollection[psobject]]::new(), $output)
            Wait-Until { $output.Count -ge 1 } -Because 'Get-ClusterAppLog -Follow to write the last line before it follows'
            @(Get-Streamed | Where-Object { $_.Text -eq $marker }) | Should -BeNullOrEmpty

            $null = Invoke-TestRequest -Port $app.Port -Path "/say?text=$marker"

            Wait-Until { @(Get-Streamed | Where-Object { $_.Text -eq $marker }).Count -eq 1 } -Because 'the new line to be streamed'
            $line = @(Get-Streamed | Where-Object { $_.Text -eq $marker })[0]
            $line.App | Should -Be 'followed'
            $line.Instance | Should -Be 0
            "$($line.Stream)" | Should -Be 'Out'
            $invocation.IsCompleted | Should -BeFalse -Because '-Follow keeps streaming until stopped'

            # What Ctrl+C does to a pipeline.
            $stopping = $shell.BeginStop($null, $null)
            $stopped = $stopping.AsyncWaitHandle.WaitOne(15000)
            $stopped | Should -BeTrue -Because 'stopping the pipeline ends -Follow'
            $invocation.IsCompleted | Should -BeTrue
        }
        finally {
            # A pipeline that would not stop is left to end with the host, rather than hang the suite here.
            if ($stopped) { $shell.Dispose() }
        }
    }
}
