#Requires -Version 7.0
# How the module's objects look at the prompt and after a trip through serialization (remoting, jobs), and
# what Tab completes: against a real host running a real two-instance HTTP app.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:ClusterHome = New-TestClusterHome
    $script:Fixture = Join-Path $PSScriptRoot '../fixtures/formatting' | Resolve-Path
    $script:Port = Get-FreePort
    $script:AppName = 'fmtview'
    $script:Started = Start-ClusterApp -Path (Join-Path $Fixture 'server.js') -Name $AppName -Instances 2 -Environment @{ PORT = $Port } -ErrorAction Stop
    $script:Pids = @($Started.Instances.Pid)
    # Each instance logs a line once it listens; it may reach its log file just after the start returns.
    Wait-Until { @(Get-ClusterAppLog $AppName).Count -ge 2 } -TimeoutSeconds 10 -Because 'both instances to log that they listen'
    $PSStyle.OutputRendering = 'PlainText'

    # Rendered as at the prompt, wide enough that no column is cut.
    function ConvertTo-Text([Parameter(ValueFromPipeline)] $InputObject) {
        end { $input | Out-String -Width 250 }
    }

    # Serialized and deserialized as remoting and jobs do (one level deep unless the type asks for more).
    function Copy-Deserialized($InputObject, [int] $Depth = 1) {
        [System.Management.Automation.PSSerializer]::Deserialize([System.Management.Automation.PSSerializer]::Serialize($InputObject, $Depth))
    }

    function Get-Completion([string] $Line) {
        @((TabExpansion2 -inputScript $Line -cursorColumn $Line.Length).CompletionMatches)
    }

    # Header, then one row per app: Name Mode Status Instances Restarts CPU Memory(MB) Uptime.
    $script:AppHeader = '(?m)^Name\s+Mode\s+Status\s+Instances\s+Restarts\s+CPU\s+Memory\(MB\)\s+Uptime\s*$'
    $script:AppRow = "(?m)^$AppName\s+Cluster\s+Online\s+2/2\s+\d+\s+\d+\.\d%\s+\d+\.\d\s+(\d+s|\d+m \d+s)\s*$"
    $script:InstanceHeader = '(?m)^App\s+Instance\s+Pid\s+Status\s+Gen\s+Restarts\s+CPU\s+Memory\(MB\)\s+Uptime\s+Reason\s*$'
}

AfterAll {
    Remove-TestClusterHome $ClusterHome
}

Describe 'The app views' {
    It 'shows an app as a table row with its instances online/total, CPU, memory in MB and uptime' {
        $Started.Instances.Count | Should -Be 2
        $text = Get-ClusterApp | ConvertTo-Text
        $text | Should -Match $AppHeader
        $text | Should -Match $AppRow
    }

    It 'shows the instances of an app as a table with their pids' {
        $text = (Get-ClusterApp $AppName).Instances | ConvertTo-Text
        $text | Should -Match $InstanceHeader
        foreach ($instance in 0, 1) {
            $text | Should -Match "(?m)^$AppName\s+$instance\s+$($Pids[$instance])\s+Online\s+\d+\s+\d+\s+\d+\.\d%\s+\d+\.\d\s+\S+"
        }
    }

    It 'has a list view with the instance count and the pids' {
        $text = Get-ClusterApp $AppName | Format-List | ConvertTo-Text
        $text | Should -Match '(?m)^Instances\s+: 2/2 online\s*$'
        $text | Should -Match "(?m)^Pids\s+: $($Pids[0]), $($Pids[1])\s*$"
        $text | Should -Match "(?m)^Script\s+: .*server\.js\s*$"
    }

    It 'shows a log line as app[instance] stream | text' {
        $text = Get-ClusterAppLog $AppName -Instance 0 | ConvertTo-Text
        $text | Should -Match ([regex]::Escape("$AppName[0] out | instance 0 listening on $Port"))
    }

    It 'shows the host as a list with its home and memory' {
        $text = Get-ClusterHost | ConvertTo-Text
        $text | Should -Match "(?m)^Home\s+: $([regex]::Escape($ClusterHome))\s*$"
        $text | Should -Match '(?m)^Memory\(MB\)\s+: \d+\.\d\s*$'
    }
}

Describe 'The views of deserialized objects' {
    It 'shows a deserialized app with the same columns' {
        $copy = Copy-Deserialized (Get-ClusterApp $AppName) -Depth 3
        $copy.PSTypeNames[0] | Should -Be 'Deserialized.Cluster.App'
        $text = $copy | ConvertTo-Text
        $text | Should -Match $AppHeader
        $text | Should -Match $AppRow
    }

    It 'keeps the instances of an app serialized one level deep, as remoting and jobs do, and shows them' {
        $copy = Copy-Deserialized (Get-ClusterApp $AppName) -Depth 1
        $copy.Instances[0].PSTypeNames[0] | Should -Be 'Deserialized.Cluster.Instance'
        $text = $copy.Instances | ConvertTo-Text
        $text | Should -Match $InstanceHeader
        $text | Should -Match "(?m)^$AppName\s+0\s+$($Pids[0])\s+Online"
        $text | Should -Match "(?m)^$AppName\s+1\s+$($Pids[1])\s+Online"
    }

    It 'shows deserialized log lines and host like the live ones' {
        (Copy-Deserialized (Get-ClusterAppLog $AppName -Instance 1) | ConvertTo-Text) |
            Should -Match ([regex]::Escape("$AppName[1] out | instance 1 listening on $Port"))
        (Copy-Deserialized (Get-ClusterHost) | ConvertTo-Text) | Should -Match "(?m)^Home\s+: $([regex]::Escape($ClusterHome))\s*$"
    }
}

Describe 'The sync result view' {
    BeforeAll {
        $script:SyncPort = Get-FreePort
        $script:SyncFile = Join-Path $TestDrive 'cluster.psd1'
        $script:Server = Join-Path $Fixture 'server.js'
        function Write-SyncFile([string] $Level) {
            Set-Content -Path $SyncFile -Value "@{ Apps = @( @{ Name = 'fmtsync'; Path = '$Server'; Environment = @{ PORT = '$SyncPort'; LOG_LEVEL = '$Level' } } ) }"
        }
        Write-SyncFile 'info'
        $script:FirstSync = Sync-ClusterApp -Path $SyncFile -ErrorAction Stop
        Write-SyncFile 'debug'
        $script:SecondSync = Sync-ClusterApp -Path $SyncFile -ErrorAction Stop
    }

    AfterAll {
        Remove-ClusterApp -Name fmtsync -Confirm:$false -ErrorAction SilentlyContinue
    }

    It 'shows each app as a row with its action, the reason and the names of the settings that changed' {
        $header = '(?m)^Name\s+Action\s+Reason\s+Changes\s*$'
        $first = $FirstSync | ConvertTo-Text
        $first | Should -Match $header
        $first | Should -Match '(?m)^fmtsync\s+Started\s+it was not running\s*$'
        $second = $SecondSync | ConvertTo-Text
        $second | Should -Match '(?m)^fmtsync\s+Reloaded\s+its settings changed\s+Environment\.LOG_LEVEL\s*$'
        $second | Should -Not -Match 'debug' -Because 'environment values may be secrets'
    }

    It 'shows the changes of a sync as a table of settings, from and to' {
        $text = $SecondSync.Changes | ConvertTo-Text
        $text | Should -Match '(?m)^Setting\s+From\s+To\s*$'
        $text | Should -Match '(?m)^Environment\.LOG_LEVEL\s+\(set\)\s+\(changed\)\s*$'
    }

    It 'shows a deserialized sync result with the same columns' {
        $copy = Copy-Deserialized $SecondSync
        $copy.PSTypeNames[0] | Should -Be 'Deserialized.Cluster.SyncResult'
        ($copy | ConvertTo-Text) | Should -Match '(?m)^fmtsync\s+Reloaded\s+its settings changed\s+Environment\.LOG_LEVEL\s*$'
    }
}

Describe 'Tab completion' {
    It 'completes -Name of <Command> with the names of running apps' -ForEach @(
        @{ Command = 'Get-ClusterApp' }
        @{ Command = 'Invoke-ClusterReload' }
        @{ Command = 'Get-ClusterAppLog' }
    ) {
        $completions = Get-Completion "$Command -Name fmtv"
        $completions.CompletionText | Should -Contain $AppName
        ($completions | Where-Object CompletionText -eq $AppName).ResultType | Should -Be 'ParameterValue'
    }

    It 'completes the first positional argument of Stop-ClusterApp with app names' {
        (Get-Completion 'Stop-ClusterApp fmtv').CompletionText | Should -Contain $AppName
    }

    It 'offers no app for a prefix no app has' {
        (Get-Completion 'Get-ClusterApp -Name zzqx').CompletionText | Should -Not -Contain $AppName
    }

    It 'does not start a host to complete a name' {
        $otherHome = Join-Path ([IO.Path]::GetTempPath()) ('cl-' + [guid]::NewGuid().ToString('n').Substring(0, 10))
        $null = New-Item -ItemType Directory -Path $otherHome
        $env:CLUSTER_HOME = $otherHome
        try {
            (Get-Completion 'Get-ClusterApp -Name fmtv').CompletionText | Should -Not -Contain $AppName
            Join-Path $otherHome 'host.lock' | Should -Not -Exist
        }
        finally {
            $env:CLUSTER_HOME = $ClusterHome
            Remove-Item -Recurse -Force $otherHome
        }
    }

    It 'completes -Path of Start-ClusterApp with files' {
        $partial = Join-Path $Fixture 'serv'
        $completions = Get-Completion "Start-ClusterApp -Path $partial"
        $completions.ResultType | Should -Contain 'ProviderItem'
        @($completions.CompletionText | ForEach-Object { $_.Trim("'") }) | Should -Contain (Join-Path $Fixture 'server.js')
    }
}

Describe 'The type data' {
    It 'asks for apps to be serialized two levels deep, so their instances stay objects' {
        (Get-TypeData -TypeName Cluster.App).SerializationDepth | Should -Be 2
    }
}

Describe 'The list view of an app, as pm2 describe' {
    BeforeAll {
        $script:DescribedPort = Get-FreePort
        $script:Described = Start-ClusterApp -Path (Join-Path $Fixture 'server.js') -Name described -Instances 2 -MaxMemoryRestart 300MB `
            -KillTimeout 2500 -LogMaxSize 1MB -LogFileCount 7 -Environment @{ PORT = "$DescribedPort"; DESCRIBED_SECRET = 'value-never-shown-7Q' } -ErrorAction Stop
        # A crash of instance 1: the reason of the last restart is what happened to its process.
        $crashed = $Described.Instances[1].Pid
        Stop-Process -Id $crashed -Force
        Wait-Until { $i = (Get-ClusterApp described).Instances[1]; $i.Status -eq 'Online' -and $i.Pid -ne $crashed } -Because 'the crashed instance to be restarted'
    }

    AfterAll { Remove-ClusterApp described -Confirm:$false -ErrorAction SilentlyContinue }

    It 'shows the log paths, restart policy, timeouts, environment names, last restart, generation and times' {
        $app = Get-ClusterApp described
        $text = $app | Format-List | ConvertTo-Text
        $logs = Join-Path $ClusterHome 'logs'

        $text | Should -Match "(?m)^OutLogs\s+: $([regex]::Escape((Join-Path $logs 'described-0.out.log'))), $([regex]::Escape((Join-Path $logs 'described-1.out.log')))\s*$"
        $text | Should -Match "(?m)^ErrorLogs\s+: $([regex]::Escape((Join-Path $logs 'described-0.err.log'))), "
        $text | Should -Match '(?m)^RestartPolicy\s+: restart, errored after 16 unstable runs \(under 1000 ms\) in a row, delay 100 ms\s*$'
        $text | Should -Match '(?m)^Timeouts\s+: listen 3000 ms, kill 2500 ms, graceful 4000 ms\s*$'
        $text | Should -Match '(?m)^MaxMemory\(MB\)\s+: 300\.0\s*$'
        $text | Should -Match '(?m)^LogRotation\s+: past 1 MB, 7 kept\s*$'
        $text | Should -Match '(?m)^Environment\s+: .*\bDESCRIBED_SECRET\b.*\bPORT\b'
        $text | Should -Not -Match 'value-never-shown-7Q' -Because 'environment values are never shown'
        $text | Should -Match '(?m)^LastRestart\s+: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, instance 1: its process was killed by SIGKILL\s*$'
        $text | Should -Match '(?m)^Generation\s+: 1\s*$'
        $text | Should -Match '(?m)^Created\s+: \S'
        $text | Should -Match '(?m)^Started\s+: \S'
        $text | Should -Match "(?m)^NodePath\s+: .*node"
        $app.EnvironmentNames | Should -Contain 'DESCRIBED_SECRET'
        $app.Started | Should -BeGreaterOrEqual $app.Created.AddSeconds(-1)
        $app.LastRestartTime | Should -BeGreaterOrEqual $app.Started
    }

    It 'shows the same list for a deserialized app' {
        $copy = Copy-Deserialized (Get-ClusterApp described) -Depth 2
        $text = $copy | Format-List | ConvertTo-Text
        $text | Should -Match '(?m)^Timeouts\s+: listen 3000 ms, kill 2500 ms, graceful 4000 ms\s*$'
        $text | Should -Match '(?m)^LastRestart\s+: .*instance 1: its process was killed by SIGKILL'
        $text | Should -Match '(?m)^Environment\s+: .*\bDESCRIBED_SECRET\b'
    }
}

Describe 'Watch-ClusterApp' {
    It 'writes the apps of each refresh as objects when its output goes on down the pipeline' {
        $seen = @(Watch-ClusterApp $AppName -Count 2 -Interval 1 | ForEach-Object { $_ })

        $seen.Count | Should -Be 2
        foreach ($app in $seen) {
            $app | Should -BeOfType ([Cluster.App])
            $app.Name | Should -Be $AppName
            $app.CpuPercent | Should -Be ([math]::Round(($app.Instances | Measure-Object CpuPercent -Sum).Sum, 1)) -Because "an app's CPU is the sum of its instances' over the same second"
        }
    }

    It 'writes nothing but the objects, formatted, when its output is redirected' {
        $output = Join-Path $TestDrive 'watch.txt'
        $command = "`$env:CLUSTER_HOME = '$ClusterHome'; `$PSStyle.OutputRendering = 'PlainText'; Import-Module '$env:CLUSTER_MODULE_PATH'; Watch-ClusterApp $AppName -Count 2"
        $child = Start-ChildPwsh -Command $command -OutputPath $output
        $child.WaitForExit(60000) | Should -BeTrue
        $child.ExitCode | Should -Be 0 -Because (Get-Content -Raw "$output.err" -ErrorAction SilentlyContinue)

        $text = Get-Content -Raw $output
        $text.Contains([char] 27) | Should -BeFalse -Because 'no escape sequence redraws a screen that is not there'
        @([regex]::Matches($text, "(?m)^$AppName\s+Cluster\s+Online\s+2/2")).Count | Should -Be 2 -Because 'each refresh writes the app once'
    }
}
