# Restart controls: signals and messages sent to instances, restart counts reset, exit codes that mean "do not
# restart", the instance variable renamed, a variable incremented per instance, a clean environment, and scripts
# run by their interpreter in fork mode. Real host, real Node apps on 127.0.0.1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Fixtures = Join-Path $PSScriptRoot '../fixtures/controls' | Resolve-Path
    $script:PSDefaultParameterValues = @{ 'Start-TestApp:Fixtures' = $Fixtures }

    # A fresh folder for an app's records (RECORD_DIR).
    function New-RecordFolder {
        $folder = Join-Path $TestHome ('rec-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
        New-Item -ItemType Directory -Path $folder | Out-Null
        $folder
    }

    # What an instance of recorder.js recorded: one object per signal, message or listen.
    function Get-Record {
        param([Parameter(Mandatory)] [string] $Folder, [Parameter(Mandatory)] [int] $Instance)
        $file = Join-Path $Folder "$Instance.log"
        if (Test-Path $file) { Get-Content $file | ForEach-Object { $_ | ConvertFrom-Json } }
    }

    function Get-Instance {
        param([Parameter(Mandatory)] [string] $Name, [Parameter(Mandatory)] [int] $Instance)
        (Get-ClusterApp $Name).Instances | Where-Object Instance -EQ $Instance
    }

    # The answer of a fork-mode instance, which is online once it has started, maybe before it listens.
    function Wait-Answer {
        param([Parameter(Mandatory)] [int] $Port)
        for ($try = 0; $try -lt 100; $try++) {
            try { return Invoke-TestRequest -Port $Port } catch { Start-Sleep -Milliseconds 100 }
        }
        throw "No answer on port $Port within 10 s."
    }

    # A port whose next one is free too, for an app whose two instances listen on base and base + 1.
    function Get-FreePortPair {
        for ($try = 0; $try -lt 20; $try++) {
            $base = Get-FreePort
            $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $base + 1)
            try { $listener.Start(); $listener.Stop(); return $base } catch { }
        }
        throw 'Found no two free ports in a row.'
    }
}

AfterAll {
    Remove-TestClusterHome $TestHome
}

Describe 'Send-ClusterSignal and Send-ClusterMessage' {
    BeforeAll {
        $script:Records = New-RecordFolder
        $script:App = Start-TestApp -Script recorder.js -Name ctl -Instances 2 -Environment @{ RECORD_DIR = $Records }
    }

    AfterAll { Remove-ClusterApp ctl -Confirm:$false }

    It 'sends a signal to the one instance named, and to every instance of an app piped in' {
        Send-ClusterSignal -Name ctl -Signal SIGUSR2 -Instance 1

        Wait-Until { @(Get-Record $Records 1 | Where-Object signal -EQ 'SIGUSR2').Count -eq 1 } -Because 'instance 1 to record SIGUSR2'
        @(Get-Record $Records 0 | Where-Object signal).Count | Should -Be 0
        (Get-Record $Records 1 | Where-Object signal).pid | Should -Be (Get-Instance ctl 1).Pid

        Get-ClusterApp ctl | Send-ClusterSignal -Signal usr1

        Wait-Until { @(0, 1 | Where-Object { Get-Record $Records $_ | Where-Object signal -EQ 'SIGUSR1' }).Count -eq 2 } -Because 'both instances to record SIGUSR1'
        (Get-ClusterApp ctl).Status | Should -Be 'Online'
    }

    It 'delivers a message as the value its JSON stands for, to instances piped in' {
        (Get-ClusterApp ctl).Instances | Where-Object Instance -EQ 0 | Send-ClusterMessage -Message @{ hello = 'world'; n = 3; list = @(1, 2) }
        Send-ClusterMessage ctl 'plain text'

        Wait-Until { @(Get-Record $Records 1 | Where-Object message -EQ 'plain text').Count -eq 1 } -Because 'instance 1 to record the text message'
        Wait-Until { @(Get-Record $Records 0 | Where-Object message -EQ 'plain text').Count -eq 1 } -Because 'instance 0 to record the text message'
        $object = @(Get-Record $Records 0 | Where-Object { $_.message -is [pscustomobject] })
        $object.Count | Should -Be 1
        $object[0].message.hello | Should -Be 'world'
        $object[0].message.n | Should -Be 3
        $object[0].message.list | Should -Be @(1, 2)
        @(Get-Record $Records 1 | Where-Object { $_.message -is [pscustomobject] }).Count | Should -Be 0
    }

    It 'with -WhatIf sends nothing' {
        Send-ClusterSignal ctl SIGHUP -WhatIf
        Send-ClusterMessage ctl 'not sent' -WhatIf
        Send-ClusterMessage ctl 'marker' -Instance 0

        Wait-Until { @(Get-Record $Records 0 | Where-Object message -EQ 'marker').Count -eq 1 } -Because 'the marker message to arrive'
        @(Get-Record $Records 0 | Where-Object { $_.signal -eq 'SIGHUP' -or $_.message -eq 'not sent' }).Count | Should -Be 0
    }

    It 'refuses a signal that does not exist and an instance the app does not have' {
        $badSignal = Get-ThrownError { Send-ClusterSignal ctl SIGNOPE -ErrorAction Stop }
        $badSignal.FullyQualifiedErrorId | Should -Be 'SendClusterSignalInvalidSignal,Cluster.Commands.SendClusterSignalCommand'
        $badSignal.CategoryInfo.Category | Should -Be 'InvalidArgument'

        $badInstance = Get-ThrownError { Send-ClusterMessage ctl 'x' -Instance 7 -ErrorAction Stop }
        $badInstance.FullyQualifiedErrorId | Should -Be 'SendClusterMessageInstanceNotFound,Cluster.Commands.SendClusterMessageCommand'
        "$badInstance" | Should -Match 'no instance 7'
    }
}

Describe 'Reset-ClusterApp' {
    It 'sets the restart counts back to zero, and with -WhatIf leaves them' {
        $records = New-RecordFolder
        Start-TestApp -Script recorder.js -Name counted -Instances 2 -Environment @{ RECORD_DIR = $records } -StartParameters @{ MinUptime = 0 } | Out-Null
        try {
            Send-ClusterMessage counted @{ exit = 1 } -Instance 0
            Wait-Until { $i = Get-Instance counted 0; $i.Restarts -ge 1 -and "$($i.Status)" -eq 'Online' } -Because 'instance 0 to be restarted after its exit'

            Reset-ClusterApp counted -WhatIf
            (Get-ClusterApp counted).Restarts | Should -BeGreaterOrEqual 1

            $reset = Reset-ClusterApp counted -PassThru

            $reset.Restarts | Should -Be 0
            (Get-ClusterApp counted).Instances.Restarts | Should -Be @(0, 0)
            (Get-ClusterApp counted).Status | Should -Be 'Online'
        }
        finally {
            Remove-ClusterApp counted -Confirm:$false
        }
    }
}

Describe 'Start-ClusterApp -StopExitCodes' {
    It 'leaves an instance that exits with a stop exit code stopped, with the reason, and restarts one that exits otherwise' {
        $records = New-RecordFolder
        Start-TestApp -Script recorder.js -Name stopper -Instances 2 -Environment @{ RECORD_DIR = $records } -StartParameters @{ StopExitCodes = 3, 4; MinUptime = 0 } | Out-Null
        try {
            Send-ClusterMessage stopper @{ exit = 3 } -Instance 0
            Send-ClusterMessage stopper @{ exit = 5 } -Instance 1

            Wait-Until { "$((Get-Instance stopper 0).Status)" -eq 'Stopped' } -Because 'instance 0 to be stopped'
            Wait-Until { $i = Get-Instance stopper 1; $i.Restarts -ge 1 -and "$($i.Status)" -eq 'Online' } -Because 'instance 1 to be restarted'
            $stopped = Get-Instance stopper 0
            $stopped.LastExitCode | Should -Be 3
            $stopped.Reason | Should -Match 'stop exit code'
            $stopped.Pid | Should -BeNullOrEmpty
            (Get-ClusterApp stopper).Status | Should -Not -Be 'Errored' -Because 'an exit the app asked for is no failure'
            Export-ClusterApp stopper | Should -Match 'StopExitCodes = @\(3, 4\)'
        }
        finally {
            Remove-ClusterApp stopper -Confirm:$false
        }
    }
}

Describe 'Instance variables' {
    It 'gives each fork-mode instance its own port with -IncrementVariable PORT' {
        $base = Get-FreePortPair
        $app = Start-ClusterApp -Path (Join-Path $Fixtures 'recorder.js') -Name ports -Mode Fork -Instances 2 -IncrementVariable PORT -Environment @{ PORT = "$base" } -ErrorAction Stop
        try {
            $app.Status | Should -Be 'Online'
            $first = Wait-Answer -Port $base
            $second = Wait-Answer -Port ($base + 1)

            $first.instance | Should -Be '0'
            $first.port | Should -Be $base
            $second.instance | Should -Be '1'
            $second.port | Should -Be ($base + 1)
            $first.pid | Should -Be (Get-Instance ports 0).Pid
            $second.pid | Should -Be (Get-Instance ports 1).Pid
        }
        finally {
            Remove-ClusterApp ports -Confirm:$false
        }
    }

    It 'refuses -IncrementVariable without a number to start from' {
        $failure = Get-ThrownError { Start-ClusterApp -Path (Join-Path $Fixtures 'recorder.js') -Name noport -Mode Fork -IncrementVariable PORT -Environment @{ PORT = 'eighty' } -ErrorAction Stop }
        $failure.FullyQualifiedErrorId | Should -Be 'StartClusterAppIncrementVariableNotNumber,Cluster.Commands.StartClusterAppCommand'
        "$failure" | Should -Match 'eighty'
        Get-ClusterApp | Where-Object Name -EQ noport | Should -BeNullOrEmpty
    }

    It 'puts the instance number in the variable -InstanceVariable names, instead of NODE_APP_INSTANCE' {
        $app = Start-TestApp -Script recorder.js -Name renamed -Instances 2 -Environment @{ INSTANCE_VARIABLE = 'INSTANCE_ID' } -StartParameters @{ InstanceVariable = 'INSTANCE_ID' }
        try {
            $seen = @{}
            for ($i = 0; $i -lt 40 -and $seen.Count -lt 2; $i++) {
                $answer = Invoke-TestRequest -Port $app.Port
                $seen[$answer.instance] = $answer
            }

            @($seen.Keys | Sort-Object) | Should -Be @('0', '1')
            $seen.Values | ForEach-Object { $_.nodeAppInstance | Should -BeNullOrEmpty }
            Export-ClusterApp renamed | Should -Match "InstanceVariable = 'INSTANCE_ID'"
        }
        finally {
            Remove-ClusterApp renamed -Confirm:$false
        }
    }
}

Describe 'Start-ClusterApp -CleanEnvironment' {
    It 'starts the instances with only the variables -Environment gives' {
        $clean = Start-TestApp -Script recorder.js -Name clean -Instances 1 -Environment @{ GIVEN = 'yes' } -StartParameters @{ CleanEnvironment = $true }
        $inheriting = Start-TestApp -Script recorder.js -Name inheriting -Instances 1 -Environment @{ GIVEN = 'yes' }
        try {
            $variables = (Invoke-TestRequest -Port $clean.Port).variables
            $variables | Should -Contain 'GIVEN'
            $variables | Should -Contain 'PORT'
            $variables | Should -Not -Contain 'PATH'
            $variables | Should -Not -Contain 'HOME'
            $variables | Should -Not -Contain 'CLUSTER_HOME'
            (Invoke-TestRequest -Port $inheriting.Port).variables | Should -Contain 'PATH' -Because 'without -CleanEnvironment an app inherits PATH'
            Export-ClusterApp clean | Should -Match 'CleanEnvironment = \$true'
        }
        finally {
            Remove-ClusterApp clean, inheriting -Confirm:$false
        }
    }
}

Describe 'The interpreter of a fork-mode script' {
    BeforeAll {
        $script:Scripts = Join-Path $TestHome 'scripts'
        New-Item -ItemType Directory -Path $Scripts | Out-Null
        foreach ($file in 'marker.sh', 'marker.py') {
            Copy-Item (Join-Path $Fixtures $file) $Scripts
            if (-not $IsWindows) { [IO.File]::SetUnixFileMode((Join-Path $Scripts $file), [IO.UnixFileMode] '420') } # 0644: not executable
        }
    }

    It 'runs a <File> script, which is not executable, with <Interpreter>' -ForEach @(
        @{ File = 'marker.sh'; Interpreter = 'sh'; Prefix = 'sh' }
        @{ File = 'marker.py'; Interpreter = 'python3'; Prefix = 'py' }
    ) {
        $records = New-RecordFolder
        $name = "script-$Prefix"
        $app = Start-ClusterApp -Path (Join-Path $Scripts $File) -Name $name -Instances 2 -Environment @{ RECORD_DIR = $records } -ErrorAction Stop
        try {
            $app.Mode | Should -Be 'Fork'
            Wait-Until { (Test-Path (Join-Path $records "$Prefix-0")) -and (Test-Path (Join-Path $records "$Prefix-1")) } -Because "both instances of $File to write their marker"
            foreach ($instance in 0, 1) {
                $words = (Get-Content (Join-Path $records "$Prefix-$instance")) -split ' '
                $words[0..1] | Should -Be @($Prefix, "$instance")
                [int] $words[2] | Should -Be (Get-Instance $name $instance).Pid -Because "the interpreter runs the script itself as the instance's process"
            }
            (Get-ClusterApp $name).Status | Should -Be 'Online'
        }
        finally {
            Remove-ClusterApp $name -Confirm:$false
        }
    }

    It 'refuses an interpreter that is not on PATH, and a message to a script that has no message channel' {
        $missing = Get-ThrownError { Start-ClusterApp -Path (Join-Path $Scripts 'marker.sh') -Name noshell -Interpreter 'no-such-shell' -ErrorAction Stop }
        $missing.FullyQualifiedErrorId | Should -Be 'StartClusterAppInterpreterNotFound,Cluster.Commands.StartClusterAppCommand'
        "$missing" | Should -Match 'no-such-shell'

        $records = New-RecordFolder
        Start-ClusterApp -Path (Join-Path $Scripts 'marker.sh') -Name quiet -Instances 1 -Environment @{ RECORD_DIR = $records } -ErrorAction Stop | Out-Null
        try {
            $noChannel = Get-ThrownError { Send-ClusterMessage quiet 'hello' -ErrorAction Stop }
            $noChannel.FullyQualifiedErrorId | Should -Be 'SendClusterMessageNoMessageChannel,Cluster.Commands.SendClusterMessageCommand'
        }
        finally {
            Remove-ClusterApp quiet -Confirm:$false
        }
    }
}

Describe 'Start-ClusterApp -CronRestart' {
    It 'reloads a cluster-mode app when its expression matches, and Set-ClusterApp turns it off' {
        $app = Start-TestApp -Script recorder.js -Name cron -Instances 2 -StartParameters @{ CronRestart = '*/3 * * * * *' }
        try {
            $before = @($app.Instances.Pid)
            Wait-Until { @((Get-ClusterApp cron).Instances | Where-Object Generation -GE 2).Count -eq 2 } -TimeoutSeconds 30 -Because 'a scheduled reload every 3 seconds to replace both instances'
            $after = Get-ClusterApp cron
            $after.Instances.Pid | ForEach-Object { $_ | Should -Not -BeIn $before }
            Export-ClusterApp cron | Should -Match "CronRestart = '\*/3 \* \* \* \* \*'"

            Set-ClusterApp cron -CronRestart '' -WarningAction SilentlyContinue
            Export-ClusterApp cron | Should -Not -Match 'CronRestart'
        }
        finally {
            Remove-ClusterApp cron -Confirm:$false
        }
    }

    It 'restarts a fork-mode app when its expression matches' {
        $records = New-RecordFolder
        Start-ClusterApp -Path (Join-Path $Fixtures 'recorder.js') -Name croned -Mode Fork -Instances 1 -CronRestart '*/3 * * * * *' -Environment @{ PORT = "$(Get-FreePort)"; RECORD_DIR = $records } -ErrorAction Stop | Out-Null
        try {
            Wait-Until { @(Get-Record $records 0 | Where-Object listening).Count -ge 2 } -TimeoutSeconds 30 -Because 'a scheduled restart every 3 seconds to start a second process'
            $started = @(Get-Record $records 0 | Where-Object listening)
            $started[0].pid | Should -Not -Be $started[1].pid
            (Get-Instance croned 0).Generation | Should -BeGreaterOrEqual 2
        }
        finally {
            Remove-ClusterApp croned -Confirm:$false
        }
    }

    It 'refuses an expression that is not one' {
        $failure = Get-ThrownError { Start-ClusterApp -Path (Join-Path $Fixtures 'recorder.js') -Name badcron -CronRestart '61 * * * *' -ErrorAction Stop }
        $failure.FullyQualifiedErrorId | Should -Be 'StartClusterAppInvalidCronExpression,Cluster.Commands.StartClusterAppCommand'
        "$failure" | Should -Match 'minute'
    }
}

Describe 'Restart controls as settings' {
    It 'are changed by Set-ClusterApp, named in the changes, and read from a PM2 ecosystem file' {
        $base = Get-FreePortPair
        $work = Join-Path $TestHome 'eco'
        New-Item -ItemType Directory -Path $work -Force | Out-Null
        Copy-Item (Join-Path $Fixtures 'recorder.js') $work
        $ecosystem = Join-Path $work 'ecosystem.config.json'
        @{ apps = @(@{
                    name = 'eco'; script = './recorder.js'; exec_mode = 'fork'; instances = 2; interpreter = 'node'
                    stop_exit_codes = @(3); instance_var = 'INSTANCE_ID'; increment_var = 'PORT'; filter_env = $true
                    env = @{ PORT = "$base"; INSTANCE_VARIABLE = 'INSTANCE_ID' }
                })
        } | ConvertTo-Json -Depth 5 | Set-Content $ecosystem
        try {
            (Sync-ClusterApp -Path $ecosystem).Action | Should -Be 'Started'
            (Wait-Answer -Port ($base + 1)).instance | Should -Be '1'
            $exported = Export-ClusterApp eco
            $exported | Should -Match 'StopExitCodes = @\(3\)'
            $exported | Should -Match "IncrementVariable = 'PORT'"
            $exported | Should -Match "Interpreter = 'node'"
            $exported | Should -Match 'CleanEnvironment = \$true'
            (Sync-ClusterApp -Path $ecosystem).Action | Should -Be 'Unchanged'

            $pids = @((Get-ClusterApp eco).Instances.Pid)

            Set-ClusterApp eco -StopExitCodes 3, 9 -WarningAction SilentlyContinue

            Export-ClusterApp eco | Should -Match 'StopExitCodes = @\(3, 9\)'
            @((Get-ClusterApp eco).Instances.Pid) | Should -Be $pids -Because 'the host alone acts on stop exit codes: no instance needs replacing'
            $synced = Sync-ClusterApp -Path $ecosystem -WarningAction SilentlyContinue
            $synced.Action | Should -Be 'Updated' -Because 'only a setting the host acts on differs from the file'
            $synced.Changes.Setting | Should -Be @('StopExitCodes')
            @((Get-ClusterApp eco).Instances.Pid) | Should -Be $pids
        }
        finally {
            Remove-ClusterApp eco -Confirm:$false -ErrorAction SilentlyContinue
        }
    }
}

Describe 'Start-ClusterApp -Watch' {
    It 'reloads a cluster-mode app with no failed request when a file under its folder changes, and not for node_modules or an ignored file' {
        $work = Join-Path $TestHome 'watched'
        New-Item -ItemType Directory -Path (Join-Path $work 'node_modules') -Force | Out-Null
        Copy-Item (Join-Path $Fixtures 'recorder.js') $work
        Set-Content (Join-Path $work 'config.json') '{}'
        $app = Start-TestApp -Script (Join-Path $work 'recorder.js') -Name watched -Instances 2 -StartParameters @{ Watch = $true; WatchDelay = 300; WatchIgnore = '*.log' }
        try {
            Set-Content (Join-Path $work 'node_modules/dep.js') 'module.exports = 1;'
            Set-Content (Join-Path $work 'debug.log') 'ignored'
            Start-Sleep -Milliseconds 1500 # five times the watch delay
            @((Get-ClusterApp watched).Instances | Where-Object Generation -GE 2).Count | Should -Be 0 -Because 'node_modules and -WatchIgnore patterns are not watched'

            $load = Start-LoadClient -Port $app.Port
            Set-Content (Join-Path $work 'config.json') '{ "changed": true }'
            Wait-Until { @((Get-ClusterApp watched).Instances | Where-Object { $_.Generation -ge 2 -and "$($_.Status)" -eq 'Online' }).Count -eq 2 } -TimeoutSeconds 30 -Because 'the change to reload both instances'
            $outcome = Stop-LoadClient $load

            $outcome.failed | Should -Be 0 -Because "a watched change reloads without downtime (errors: $($outcome.errors | ConvertTo-Json -Compress))"
            $outcome.ok | Should -BeGreaterThan 0
            @((Get-ClusterApp watched).Instances.Generation | Select-Object -Unique) | Should -Be @(2) -Because 'one change, debounced, is one reload'
            Export-ClusterApp watched | Should -Match 'Watch = \$true'
        }
        finally {
            Remove-ClusterApp watched -Confirm:$false
        }
    }
}
