#Requires -Version 7.0
# The foundation end to end: a real host started on demand, real Node apps on 127.0.0.1, and the cmdlets that
# start, list, stop, restart and remove them, supervise their instances and read their logs.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/foundation')).Path
    $script:EchoScript = Join-Path $Fixtures 'echo.js'

    # Starts the echo fixture on a port of its own; the app carries that port as a note property.
    function Start-EchoApp {
        param(
            [Parameter(Mandatory)] [string] $Name,
            [int] $Instances = 2,
            [hashtable] $Environment = @{},
            [string[]] $Arguments = @()
        )
        $port = Get-FreePort
        $environment = @{ PORT = "$port" } + $Environment
        $app = Start-ClusterApp $EchoScript -Name $Name -Instances $Instances -Environment $environment -Arguments $Arguments -ErrorAction Stop
        $app | Add-Member -NotePropertyName Port -NotePropertyValue $port -PassThru
    }

    function Get-InstancePid([string] $Name) {
        @((Get-ClusterApp $Name -ErrorAction Stop).Instances | Sort-Object Instance | ForEach-Object Pid)
    }

    # Sends requests, a new connection each, until every one of the expected pids has answered (at most
    # $MaxRequests); returns every answer.
    function Invoke-UntilAllAnswer {
        param(
            [Parameter(Mandatory)] [int] $Port,
            [Parameter(Mandatory)] [int[]] $ExpectedPid,
            [string] $Path = '/',
            [int] $MaxRequests = 40
        )
        $answers = [System.Collections.Generic.List[object]]::new()
        $seen = [System.Collections.Generic.HashSet[int]]::new()
        for ($i = 0; $i -lt $MaxRequests; $i++) {
            $answer = Invoke-TestRequest -Port $Port -Path $Path
            $answers.Add($answer)
            $null = $seen.Add([int] $answer.pid)
            if (@($ExpectedPid | Where-Object { -not $seen.Contains($_) }).Count -eq 0) { break }
        }
        , $answers.ToArray()
    }

    function Get-ParentProcessId([int] $Id) {
        (Get-Process -Id $Id -ErrorAction Stop).Parent.Id
    }

    function Remove-AllApps {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false
    }

    # Runs a command in a child 'pwsh -NoProfile' that inherits this session's environment (CLUSTER_HOME,
    # CLUSTER_MODULE_PATH). Under 'dotnet pwsh' this process is dotnet itself.
    function Invoke-ChildPwsh([string] $Command) {
        $path = [Environment]::ProcessPath
        $prefix = @(if ([IO.Path]::GetFileNameWithoutExtension($path) -ne 'pwsh') { Join-Path $PSHOME 'pwsh.dll' })
        $output = & $path @prefix -NoProfile -NonInteractive -Command $Command 2>&1
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = @($output | ForEach-Object { "$_" }) }
    }
}

AfterAll {
    Remove-TestClusterHome $TestHome
}

Describe 'The host' {
    It 'is not running for a fresh CLUSTER_HOME until the first cmdlet, and then serves that CLUSTER_HOME' {
        $suiteHome = $env:CLUSTER_HOME
        $freshHome = New-TestClusterHome
        try {
            Join-Path $freshHome 'host.lock' | Should -Not -Exist
            Join-Path $freshHome 'host.sock' | Should -Not -Exist

            $null = Start-ClusterApp $EchoScript -Name first -Environment @{ PORT = '0' } -ErrorAction Stop
            $clusterHost = Get-ClusterHost

            $clusterHost.Pid | Should -BeGreaterThan 0
            Test-ProcessAlive -Id $clusterHost.Pid | Should -BeTrue
            $clusterHost.Pid | Should -Not -Be $PID
            $clusterHost.Home | Should -Be $freshHome
            Join-Path $freshHome 'host.lock' | Should -Exist
        }
        finally {
            Remove-TestClusterHome $freshHome
            $env:CLUSTER_HOME = $suiteHome
        }
    }

    It 'outlives the PowerShell session that started it' {
        $suiteHome = $env:CLUSTER_HOME
        $childHome = New-TestClusterHome
        try {
            $port = Get-FreePort
            $command = "`$ErrorActionPreference = 'Stop'; Import-Module `$env:CLUSTER_MODULE_PATH; " +
                "`$null = Start-ClusterApp '$EchoScript' -Name survivor -Instances 2 -Environment @{ PORT = '$port' }; " +
                "'host pid ' + (Get-ClusterHost).Pid"
            $child = Invoke-ChildPwsh $command

            $child.ExitCode | Should -Be 0 -Because ($child.Output -join "`n")
            $hostLine = $child.Output | Where-Object { $_ -like 'host pid *' }
            $hostLine | Should -Not -BeNullOrEmpty -Because ($child.Output -join "`n")
            $hostPid = [int] ($hostLine -replace '^host pid ', '')

            $clusterHost = Get-ClusterHost
            $clusterHost.Pid | Should -Be $hostPid
            $app = Get-ClusterApp survivor
            $app.Status | Should -Be 'Online'
            $app.Instances.Count | Should -Be 2
            $answers = Invoke-UntilAllAnswer -Port $port -ExpectedPid $app.Instances.Pid
            @($answers.pid | Sort-Object -Unique) | Should -Be @($app.Instances.Pid | Sort-Object)
        }
        finally {
            Remove-TestClusterHome $childHome
            $env:CLUSTER_HOME = $suiteHome
        }
    }
}

Describe 'Starting an app' {
    AfterEach {
        Remove-AllApps
    }

    It 'with -Instances 0 starts one online instance per CPU, as a Cluster.App of Cluster.Instance objects' {
        $app = Start-ClusterApp $EchoScript -Name percpu -Instances 0 -Environment @{ PORT = '0' }

        $app.PSObject.TypeNames[0] | Should -Be 'Cluster.App'
        $app.Instances.Count | Should -Be ([Environment]::ProcessorCount)
        foreach ($instance in $app.Instances) {
            $instance.PSObject.TypeNames[0] | Should -Be 'Cluster.Instance'
            $instance.Status | Should -Be 'Online'
            Test-ProcessAlive -Id $instance.Pid | Should -BeTrue
        }
        $app.Status | Should -Be 'Online'
        @(Get-ClusterApp percpu).Instances.Count | Should -Be ([Environment]::ProcessorCount)
    }

    It 'with -Instances -1 starts one fewer than the CPUs, but at least one' {
        $app = Start-ClusterApp $EchoScript -Name minusone -Instances -1 -Environment @{ PORT = '0' }

        $app.Instances.Count | Should -Be ([Math]::Max(1, [Environment]::ProcessorCount - 1))
        $app.Status | Should -Be 'Online'
    }

    It 'with -Instances -100 starts one instance' {
        $app = Start-ClusterApp $EchoScript -Name minushundred -Instances -100 -Environment @{ PORT = '0' }

        $app.Instances.Count | Should -Be 1
        $app.Instances[0].Status | Should -Be 'Online'
    }

    It 'gives every instance its own NODE_APP_INSTANCE, and every instance answers on the one port' {
        $app = Start-EchoApp -Name shared -Instances 2
        $pids = @($app.Instances | Sort-Object Instance | ForEach-Object Pid)
        @($pids | Sort-Object -Unique).Count | Should -Be 2

        $answers = Invoke-UntilAllAnswer -Port $app.Port -ExpectedPid $pids

        @($answers.pid | Sort-Object -Unique) | Should -Be @($pids | Sort-Object)
        foreach ($instance in $app.Instances) {
            $fromIt = @($answers | Where-Object pid -EQ $instance.Pid)
            @($fromIt.instance | Sort-Object -Unique) | Should -Be @($instance.Instance)
        }
        @($answers.instance | Sort-Object -Unique) | Should -Be @(0, 1)
    }

    It 'passes the session environment, -Environment and -Arguments to the instances' {
        $env:NODE_FOUNDATION_FROM_SESSION = 'session value'
        try {
            $app = Start-EchoApp -Name envy -Instances 2 -Environment @{ FOUNDATION_FROM_PARAMETER = 'z' } -Arguments 'alpha', 'beta gamma'
        }
        finally {
            Remove-Item Env:NODE_FOUNDATION_FROM_SESSION
        }

        $answers = Invoke-UntilAllAnswer -Port $app.Port -ExpectedPid $app.Instances.Pid -Path '/?env=NODE_FOUNDATION_FROM_SESSION,FOUNDATION_FROM_PARAMETER,FOUNDATION_NEVER_SET'

        @($answers.pid | Sort-Object -Unique).Count | Should -Be 2
        foreach ($answer in $answers) {
            $answer.env.NODE_FOUNDATION_FROM_SESSION | Should -Be 'session value'
            $answer.env.FOUNDATION_FROM_PARAMETER | Should -Be 'z'
            $answer.env.FOUNDATION_NEVER_SET | Should -BeNullOrEmpty
            $answer.argv | Should -Be @('alpha', 'beta gamma')
        }
        $app.Arguments | Should -Be @('alpha', 'beta gamma')
    }

    It 'with -WhatIf starts nothing' {
        $result = Start-ClusterApp $EchoScript -Name hypothetical -Environment @{ PORT = '0' } -WhatIf

        $result | Should -BeNullOrEmpty
        Get-ClusterApp | Where-Object Name -EQ 'hypothetical' | Should -BeNullOrEmpty
        { Get-ClusterApp hypothetical -ErrorAction Stop } | Should -Throw -ErrorId 'GetClusterAppAppNotFound,Cluster.Commands.GetClusterAppCommand'
    }
}

Describe 'Supervision' {
    AfterEach {
        Remove-AllApps
    }

    It 'brings back a worker killed from outside, with the same NODE_APP_INSTANCE and a new pid' {
        $app = Start-EchoApp -Name phoenix -Instances 2
        $victim = $app.Instances | Where-Object Instance -EQ 0
        $bystander = $app.Instances | Where-Object Instance -EQ 1

        Stop-Process -Id $victim.Pid -Force

        Wait-Until -Because 'instance 0 to be back online with a new pid' -Condition {
            $now = (Get-ClusterApp phoenix).Instances | Where-Object Instance -EQ 0
            $now.Status -eq 'Online' -and $now.Pid -and $now.Pid -ne $victim.Pid
        }
        $after = Get-ClusterApp phoenix
        $revived = $after.Instances | Where-Object Instance -EQ 0
        $revived.Restarts | Should -Be 1
        Test-ProcessAlive -Id $victim.Pid | Should -BeFalse
        Test-ProcessAlive -Id $revived.Pid | Should -BeTrue
        $untouched = $after.Instances | Where-Object Instance -EQ 1
        $untouched.Pid | Should -Be $bystander.Pid
        $untouched.Restarts | Should -Be 0
        $after.Status | Should -Be 'Online'

        $answers = Invoke-UntilAllAnswer -Port $app.Port -ExpectedPid $revived.Pid, $untouched.Pid
        $fromRevived = @($answers | Where-Object pid -EQ $revived.Pid)
        $fromRevived | Should -Not -BeNullOrEmpty
        @($fromRevived.instance | Sort-Object -Unique) | Should -Be @(0)
    }

    It 'marks a crash-looping app Errored after -MaxRestarts and stops restarting it' {
        $app = Start-ClusterApp (Join-Path $Fixtures 'crash-loop.js') -Name crashy -Instances 1 -MaxRestarts 3 -Environment @{ PORT = '0' }
        $app.Instances.Count | Should -Be 1

        Wait-Until -Because 'the crash-looping app to be errored' -Condition { (Get-ClusterApp crashy).Status -eq 'Errored' }
        $errored = Get-ClusterApp crashy
        $instance = $errored.Instances[0]
        $instance.Status | Should -Be 'Errored'
        $instance.Pid | Should -BeNullOrEmpty
        $instance.LastExitCode | Should -Be 1
        $restarts = $instance.Restarts
        $restarts | Should -BeGreaterThan 0

        Start-Sleep -Seconds 1

        $later = Get-ClusterApp crashy
        $later.Status | Should -Be 'Errored'
        $later.Instances[0].Status | Should -Be 'Errored'
        $later.Instances[0].Pid | Should -BeNullOrEmpty
        $later.Instances[0].Restarts | Should -Be $restarts
    }
}

Describe 'Stopping, restarting and removing an app' {
    AfterEach {
        Remove-AllApps
    }

    It 'Stop-ClusterApp ends every worker and lists the app and its instances as Stopped' {
        $app = Start-EchoApp -Name stopper -Instances 2
        $pids = $app.Instances.Pid

        Stop-ClusterApp stopper

        foreach ($id in $pids) { Test-ProcessAlive -Id $id | Should -BeFalse }
        $stopped = Get-ClusterApp stopper
        $stopped.Status | Should -Be 'Stopped'
        $stopped.Instances.Count | Should -Be 2
        foreach ($instance in $stopped.Instances) {
            $instance.Status | Should -Be 'Stopped'
            $instance.Pid | Should -BeNullOrEmpty
        }
    }

    It 'Restart-ClusterApp brings a stopped app back online with new pids' {
        $app = Start-EchoApp -Name restarter -Instances 2
        $oldPids = $app.Instances.Pid
        Stop-ClusterApp restarter

        $restarted = Restart-ClusterApp restarter -PassThru

        $restarted.Status | Should -Be 'Online'
        $listed = Get-ClusterApp restarter
        $listed.Status | Should -Be 'Online'
        $listed.Instances.Count | Should -Be 2
        foreach ($instance in $listed.Instances) {
            $instance.Status | Should -Be 'Online'
            $instance.Pid | Should -Not -BeIn $oldPids
            Test-ProcessAlive -Id $instance.Pid | Should -BeTrue
        }
        $answers = Invoke-UntilAllAnswer -Port $app.Port -ExpectedPid $listed.Instances.Pid
        @($answers.pid | Sort-Object -Unique) | Should -Be @($listed.Instances.Pid | Sort-Object)
    }

    It 'Remove-ClusterApp forgets the app and leaves no process behind, its Node primary included' {
        $app = Start-EchoApp -Name remover -Instances 2
        $pids = $app.Instances.Pid
        $primaryPid = Get-ParentProcessId $pids[0]
        $primaryPid | Should -Be (Get-ParentProcessId $pids[1])
        $primaryPid | Should -Not -Be (Get-ClusterHost).Pid
        Test-ProcessAlive -Id $primaryPid | Should -BeTrue

        Remove-ClusterApp remover -Confirm:$false

        Get-ClusterApp | Where-Object Name -EQ 'remover' | Should -BeNullOrEmpty
        { Get-ClusterApp remover -ErrorAction Stop } | Should -Throw -ErrorId 'GetClusterAppAppNotFound,Cluster.Commands.GetClusterAppCommand'
        foreach ($id in $pids) { Test-ProcessAlive -Id $id | Should -BeFalse }
        Wait-Until -TimeoutSeconds 10 -Because "the app's Node primary ($primaryPid) to exit" -Condition { -not (Test-ProcessAlive -Id $primaryPid) }
    }
}

Describe '-WhatIf on a running app' {
    BeforeAll {
        $script:Hypothetical = Start-EchoApp -Name untouchable -Instances 2
        $script:HypotheticalPids = @($Hypothetical.Instances | Sort-Object Instance | ForEach-Object Pid)
    }

    AfterAll {
        Remove-AllApps
    }

    It 'Stop-ClusterApp -WhatIf leaves it online with the same pids' {
        Stop-ClusterApp untouchable -WhatIf

        $app = Get-ClusterApp untouchable
        $app.Status | Should -Be 'Online'
        Get-InstancePid untouchable | Should -Be $HypotheticalPids
        foreach ($id in $HypotheticalPids) { Test-ProcessAlive -Id $id | Should -BeTrue }
    }

    It 'Remove-ClusterApp -WhatIf leaves it listed and running' {
        Remove-ClusterApp untouchable -WhatIf

        $app = Get-ClusterApp untouchable
        $app | Should -Not -BeNullOrEmpty
        $app.Status | Should -Be 'Online'
        Get-InstancePid untouchable | Should -Be $HypotheticalPids
    }
}

Describe 'Getting apps and piping them' {
    BeforeAll {
        $script:Alpha = Start-EchoApp -Name alpha -Instances 1
        $script:Beta = Start-EchoApp -Name beta -Instances 1
    }

    AfterAll {
        Remove-AllApps
    }

    It 'Get-ClusterApp with a wildcard gets only the apps that match' {
        $matched = @(Get-ClusterApp a*)

        $matched.Count | Should -Be 1
        $matched[0].Name | Should -Be 'alpha'
        @(Get-ClusterApp *).Count | Should -Be 2
        @(Get-ClusterApp z*).Count | Should -Be 0
    }

    It 'Get-ClusterApp with an unknown name writes an AppNotFound error' {
        $result = Get-ClusterApp nosuch -ErrorVariable failures -ErrorAction SilentlyContinue

        $result | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -Be 'GetClusterAppAppNotFound,Cluster.Commands.GetClusterAppCommand'
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'Get-ClusterApp | Stop-ClusterApp stops every app' {
        $pids = @($Alpha.Instances.Pid) + @($Beta.Instances.Pid)
        @(Get-ClusterApp).Count | Should -Be 2

        Get-ClusterApp | Stop-ClusterApp

        $apps = @(Get-ClusterApp)
        $apps.Count | Should -Be 2
        foreach ($app in $apps) { $app.Status | Should -Be 'Stopped' }
        foreach ($id in $pids) { Test-ProcessAlive -Id $id | Should -BeFalse }
    }
}

Describe 'Get-ClusterAppLog' {
    BeforeAll {
        $script:Chatty = Start-EchoApp -Name chatty -Instances 2
    }

    AfterAll {
        Remove-AllApps
    }

    It 'returns what each instance wrote to stdout and stderr' {
        $lines = @(Get-ClusterAppLog chatty)

        foreach ($instance in 0, 1) {
            $out = @($lines | Where-Object { $_.Instance -eq $instance -and $_.Stream -eq 'Out' })
            $err = @($lines | Where-Object { $_.Instance -eq $instance -and $_.Stream -eq 'Err' })
            $out.Text | Should -Be (1..3 | ForEach-Object { "echo out $_ of 3 from instance $instance" })
            $err.Text | Should -Be (1..3 | ForEach-Object { "echo err $_ of 3 from instance $instance" })
        }
        $lines.Count | Should -Be 12
        foreach ($line in $lines) { $line.App | Should -Be 'chatty' }
    }

    It 'with -Instance returns only that instance' {
        $lines = @(Get-ClusterAppLog chatty -Instance 1)

        $lines.Count | Should -Be 6
        foreach ($line in $lines) { $line.Instance | Should -Be 1 }
        @($lines | Where-Object Stream -EQ 'Out').Text | Should -Be (1..3 | ForEach-Object { "echo out $_ of 3 from instance 1" })
    }

    It 'with -Tail returns only the last lines of each stream' {
        $lines = @(Get-ClusterAppLog chatty -Tail 1)

        $lines.Count | Should -Be 4
        foreach ($instance in 0, 1) {
            ($lines | Where-Object { $_.Instance -eq $instance -and $_.Stream -eq 'Out' }).Text | Should -Be "echo out 3 of 3 from instance $instance"
            ($lines | Where-Object { $_.Instance -eq $instance -and $_.Stream -eq 'Err' }).Text | Should -Be "echo err 3 of 3 from instance $instance"
        }

        $oneInstance = @(Get-ClusterAppLog chatty -Instance 0 -Tail 2)
        $oneInstance.Count | Should -Be 4
        @($oneInstance | Where-Object Stream -EQ 'Err').Text | Should -Be @('echo err 2 of 3 from instance 0', 'echo err 3 of 3 from instance 0')
    }
}
