#Requires -Version 7.0
# Fleet rollouts over PowerShell remoting, for real: an sshd of this suite's own on 127.0.0.1 with a PowerShell
# subsystem, and three "machines" that are SSH sessions to it, each with its own CLUSTER_HOME (so its own host
# and apps) and the built module on its PSModulePath. Needs sshd (openssh-server; .ci/run installs it).

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-Module (Join-Path $PSScriptRoot 'FleetHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/reload')).Path
    $script:ModuleRoot = Split-Path -Parent (Split-Path -Parent (Resolve-Path $env:CLUSTER_MODULE_PATH).Path)

    # Starts the fixture app on each machine, each on its own port; returns machine name -> port.
    function Start-FleetApp {
        param([Parameter(Mandatory)] [string] $Name, [string] $Script = 'app.js', [int] $Instances = 2, [string] $Mode)
        $ports = @{}
        foreach ($machine in $Machines) {
            $port = Get-FreePort
            $environment = @{ PORT = "$port"; FLAG_FILE = (Join-Path $machine.ClusterHome "$Name.broken") }
            $app = Invoke-Command -Session $machine -ArgumentList (Join-Path $Fixtures $Script), $Name, $Instances, $environment, $Mode -ScriptBlock {
                param($path, $name, $instances, $environment, $mode)
                $modeParameter = if ($mode) { @{ Mode = $mode } } else { @{} }
                Start-ClusterApp -Path $path -Name $name -Instances $instances -Environment $environment @modeParameter -ErrorAction Stop
            }
            $app.Status.ToString() | Should -Be 'Online'
            $ports[$machine.Name] = $port
        }
        $ports
    }

    function Get-MachinePid {
        param([Parameter(Mandatory)] $Machine, [Parameter(Mandatory)] [string] $Name)
        @(Invoke-Command -Session $Machine -ArgumentList $Name -ScriptBlock { param($name) (Get-ClusterApp -Name $name).Instances.Pid } | Sort-Object)
    }

    $script:Ssh = Start-TestSshServer -Folder (Join-Path $TestHome 'ssh')
    $script:Machines = @('m1', 'm2', 'm3' | ForEach-Object { New-TestMachine -Ssh $Ssh -Name $_ -ModulePath $ModuleRoot })
}

AfterAll {
    try {
        foreach ($session in @(Get-PSSession | Where-Object { $_.PSObject.Properties['ClusterHome'] })) { Remove-TestMachine $session }
    }
    finally {
        if ($Ssh) { Stop-TestSshServer $Ssh }
        Remove-TestClusterHome $TestHome
    }
}

Describe 'Fleet over PowerShell remoting' {
    It 'Get-ClusterApp -Session returns each machine''s apps, typed for their views, with PSComputerName' {
        Start-FleetApp -Name 'read' | Out-Null

        $apps = @(Get-ClusterApp -Session $Machines -Name 'read' -ErrorAction Stop)

        $apps.Count | Should -Be 3
        @($apps.RunspaceId | Sort-Object) | Should -Be @($Machines.Runspace.InstanceId | Sort-Object)
        foreach ($app in $apps) {
            $app.PSObject.TypeNames[0] | Should -Be 'Deserialized.Cluster.App'
            $app.PSComputerName | Should -Be '127.0.0.1'
            $app.Instances[0].PSObject.TypeNames[0] | Should -Be 'Deserialized.Cluster.Instance'
        }
        $table = $apps | Format-Table | Out-String
        $table | Should -Match 'Name\s+Mode\s+Status\s+Instances.*PSComputerName'
        @($table -split "`n" | Where-Object { $_ -match '^\s*read\s+Cluster\s+Online\s+2/2' }).Count | Should -Be 3
        ($apps[0] | Format-List | Out-String) | Should -Match 'Status\s+: Online'
        ($apps[0].Instances | Format-Table | Out-String) | Should -Match 'Online'
    }

    It 'rolls a reload machine by machine under load, failing no request' {
        $ports = Start-FleetApp -Name 'web'
        $before = @{}
        foreach ($machine in $Machines) { $before[$machine.Name] = Get-MachinePid $machine 'web' }
        $clients = foreach ($machine in $Machines) { Start-LoadClient -Port $ports[$machine.Name] -MaxSeconds 60 -Folder $TestHome }
        try {
            $reloaded = @(Invoke-ClusterReload -Session $Machines -Name 'web' -ErrorAction Stop)
        }
        finally {
            $results = foreach ($client in $clients) { Stop-LoadClient $client }
        }

        $reloaded.Count | Should -Be 3
        $reloaded | ForEach-Object { $_.Status.ToString() | Should -Be 'Online' }
        @($reloaded.RunspaceId) | Should -Be @($Machines.Runspace.InstanceId) -Because 'the machines are reloaded one after the other, in the order given'
        foreach ($result in $results) {
            $result.failed | Should -Be 0 -Because "no request fails during a rolling reload ($($result.errors | ConvertTo-Json -Compress))"
            $result.ok | Should -BeGreaterThan 0
        }
        foreach ($machine in $Machines) {
            foreach ($newPid in Get-MachinePid $machine 'web') { $newPid | Should -Not -BeIn $before[$machine.Name] }
        }
    }

    It 'rolls the apps a pipeline gives once per machine, shows progress across the machines, and changes nothing under -WhatIf' {
        Start-FleetApp -Name 'piped-a' -Instances 1 | Out-Null
        Start-FleetApp -Name 'piped-b' -Instances 1 | Out-Null
        $before = @{}
        foreach ($machine in $Machines) { $before[$machine.Name] = Get-MachinePid $machine 'piped-*' }

        Invoke-ClusterReload -Session $Machines -Name 'piped-*' -WhatIf
        $whatIfPids = @{}
        foreach ($machine in $Machines) { $whatIfPids[$machine.Name] = Get-MachinePid $machine 'piped-*' }
        # In a runspace of its own, so that the progress records can be read back.
        $shell = [powershell]::Create()
        $null = $shell.AddScript('param($module, $machines) Import-Module $module; Get-ClusterApp -Session $machines -Name piped-a, piped-b | Invoke-ClusterReload -Session $machines').
            AddArgument($env:CLUSTER_MODULE_PATH).AddArgument($Machines)
        $reloaded = @($shell.Invoke())
        $progress = @($shell.Streams.Progress)
        $shellErrors = @($shell.Streams.Error)
        $shell.Dispose()

        foreach ($machine in $Machines) { $whatIfPids[$machine.Name] | Should -Be $before[$machine.Name] -Because '-WhatIf reloads nothing' }
        $shellErrors | Should -BeNullOrEmpty
        $reloaded.Count | Should -Be 6 -Because 'each of the 3 machines reloads each of the 2 apps once'
        foreach ($machine in $Machines) {
            $instances = Invoke-Command -Session $machine { (Get-ClusterApp -Name 'piped-*').Instances }
            @($instances.Generation | Select-Object -Unique) | Should -Be @(2) -Because 'one reload after the start'
        }
        $machineRecords = @($progress | Where-Object { $_.Activity -eq 'Invoke-ClusterReload across 3 machines' })
        @($machineRecords | Where-Object RecordType -EQ 'Processing' | ForEach-Object StatusDescription) |
            Should -Be @('Machine 1 of 3: 127.0.0.1 (session m1)', 'Machine 2 of 3: 127.0.0.1 (session m2)', 'Machine 3 of 3: 127.0.0.1 (session m3)')
        $machineRecords[-1].RecordType | Should -Be 'Completed'
    }

    It 'nests each machine''s instance progress under the bar across the machines, one bar per machine side by side, and passes on each machine''s warnings' {
        Start-FleetApp -Name 'nested' | Out-Null
        Start-FleetApp -Name 'forked' -Instances 1 -Mode 'Fork' | Out-Null

        # In a runspace of its own, so that the progress records can be read back. Two machines at a time: the
        # first two roll side by side, the third after them.
        $shell = [powershell]::Create()
        $null = $shell.AddScript('param($module, $machines) Import-Module $module; Invoke-ClusterReload -Session $machines -Name nested, forked -MaxParallelMachines 2').
            AddArgument($env:CLUSTER_MODULE_PATH).AddArgument($Machines)
        $reloaded = @($shell.Invoke())
        $progress = @($shell.Streams.Progress)
        $warnings = @($shell.Streams.Warning | ForEach-Object Message)
        $shellErrors = @($shell.Streams.Error)
        $shell.Commands.Clear()
        $leftJobs = $shell.AddScript('@(Get-Job).Count').Invoke()[0]
        $shell.Dispose()

        $shellErrors | Should -BeNullOrEmpty
        $reloaded.Count | Should -Be 6
        $machineBar = @($progress | Where-Object { $_.Activity -eq 'Invoke-ClusterReload across 3 machines' })
        $machineBar.Count | Should -BeGreaterThan 0
        $machineBarId = $machineBar[0].ActivityId
        $barIds = @{}
        foreach ($machine in $Machines) {
            $label = "127.0.0.1 (session $($machine.Name))"
            $records = @($progress | Where-Object { $_.Activity -eq "${label}: Reloading nested" })
            $records.Count | Should -BeGreaterThan 0 -Because "the instance progress of $label reaches the caller"
            @($records | Where-Object RecordType -EQ 'Processing' | ForEach-Object StatusDescription | Select-Object -Unique) |
                Should -Be @('Instance 0 (1 of 2)', 'Instance 1 (2 of 2)')
            @($records.ParentActivityId | Select-Object -Unique) | Should -Be @($machineBarId) -Because 'the machine bar is their parent'
            @($records.ActivityId | Select-Object -Unique).Count | Should -Be 1
            $records[-1].RecordType | Should -Be 'Completed'
            $barIds[$machine.Name] = $records[0].ActivityId
            @($warnings | Where-Object { $_ -like "${label}: 'forked' runs in fork mode*restarted instead*" }).Count | Should -Be 1
        }
        @($barIds.Values | Select-Object -Unique).Count | Should -Be 3 -Because 'each machine has its own bar, so that machines rolling side by side do not overwrite each other'
        $machineBarId | Should -Not -BeIn $barIds.Values
        $machineBar[-1].RecordType | Should -Be 'Completed'
        $progress[-1].ActivityId | Should -Be $machineBarId -Because 'every machine''s bar is closed before the bar across the machines'
        $leftJobs | Should -Be 0 -Because 'the machines'' jobs are not left in the session'
    }

    It 'stops at once when the caller stops it, with the reload on the machine, and touches no machine after it' {
        Start-FleetApp -Name 'quiet' -Script 'no-listen.js' -Instances 1 | Out-Null
        $before = @{}
        foreach ($machine in $Machines) { $before[$machine.Name] = Get-MachinePid $machine 'quiet' }
        # The new instance never says it is ready, so the first machine's reload waits the whole minute.
        $shell = [powershell]::Create()
        $null = $shell.AddScript('param($module, $machines) Import-Module $module; Invoke-ClusterReload -Session $machines -Name quiet -ListenTimeout 60000').
            AddArgument($env:CLUSTER_MODULE_PATH).AddArgument($Machines)
        try {
            $null = $shell.BeginInvoke()
            Wait-Until -TimeoutSeconds 30 -Because 'the first machine to start replacing its instance' -Condition {
                @($shell.Streams.Progress | Where-Object Activity -EQ '127.0.0.1 (session m1): Reloading quiet').Count -gt 0
            }
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $shell.Stop()
            $watch.Stop()
            $state = $shell.InvocationStateInfo.State
            $shell.Commands.Clear()
            $leftJobs = $shell.AddScript('@(Get-Job).Count').Invoke()[0]
        }
        finally {
            $shell.Dispose()
        }

        $state | Should -Be 'Stopped'
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 10 -Because 'stopping does not wait for the reload on the machine'
        $leftJobs | Should -Be 0
        # A session whose command still ran would refuse this one.
        Invoke-Command -Session $Machines[0] -ErrorAction Stop { 'free' } | Should -Be 'free'
        Get-MachinePid $Machines[1] 'quiet' | Should -Be $before.m2
        Get-MachinePid $Machines[2] 'quiet' | Should -Be $before.m3
    }

    It 'warns, when Ctrl+C stops a rollout in a terminal, which machine it was changing and which it did not touch' -Skip:$IsWindows {
        Start-FleetApp -Name 'halted' -Script 'no-listen.js' -Instances 1 | Out-Null
        # The terminal's pwsh opens sessions of its own to the same machines (their CLUSTER_HOMEs).
        $connect = Join-Path $TestHome 'connect-machines.ps1'
        $machineList = ($Machines | ForEach-Object { "@{ Name = '$($_.Name)'; ClusterHome = '$($_.ClusterHome)' }" }) -join ', '
        Set-Content -Path $connect -Value @(
            "Import-Module '$(Join-Path $PSScriptRoot 'FleetHelpers.psm1')'"
            "`$ssh = [pscustomobject]@{ Port = $($Ssh.Port); Key = '$($Ssh.Key)'; KnownHosts = '$($Ssh.KnownHosts)' }"
            "`$machines = foreach (`$machine in @($machineList)) { New-TestMachine -Ssh `$ssh -Name `$machine.Name -ModulePath '$ModuleRoot' -ClusterHome `$machine.ClusterHome }"
            "'connected: ' + `$machines.Count"
        )
        $terminal = Start-TestTerminal -Name fleet
        try {
            Send-TestTerminal $terminal -Line ". '$connect'"
            Wait-Until { (Get-TestTerminalScreen $terminal) -match '(?m)^connected: 3' } -TimeoutSeconds 60 -Because 'the terminal to open its sessions'
            Send-TestTerminal $terminal -Line 'Invoke-ClusterReload -Session $machines -Name halted -ListenTimeout 60000'
            try {
                Wait-Until -TimeoutSeconds 30 -Because 'the first machine to be reloading' -Condition {
                    (Invoke-Command -Session $Machines[0] { (Get-ClusterApp -Name halted).Status }).ToString() -eq 'Reloading'
                }
            }
            catch {
                throw "$_ The terminal shows:`n$(Get-TestTerminalScreen $terminal)"
            }
            Send-TestTerminal $terminal -Keys C-c

            Wait-Until { (Get-TestTerminalScreen $terminal) -match 'was stopped while it changed' } -TimeoutSeconds 20 -Because 'the cmdlet to warn as it stops'
            $screen = Get-TestTerminalScreen $terminal
        }
        finally {
            Stop-TestTerminal $terminal
        }

        $screen | Should -Match ([regex]::Escape('WARNING: Invoke-ClusterReload was stopped while it changed 127.0.0.1 (session m1): each of them stops once the instance it is replacing is done'))
        $screen | Should -Match ([regex]::Escape('Not touched, still on the release they run: 127.0.0.1 (session m2), 127.0.0.1 (session m3).'))
        foreach ($machine in $Machines[1..2]) {
            (Invoke-Command -Session $machine { (Get-ClusterApp -Name halted).Status }).ToString() | Should -Be 'Online' -Because "$($machine.Name) was not touched"
        }
    }

    It 'stops the rollout at the machine whose new release fails, one or two machines at a time, and leaves the machines after it untouched' {
        Start-FleetApp -Name 'release' -Script 'broken-when-flagged.js' | Out-Null
        $before = @{}
        foreach ($machine in $Machines) { $before[$machine.Name] = Get-MachinePid $machine 'release' }
        Set-Content -Path (Join-Path $Machines[1].ClusterHome 'release.broken') -Value 'broken'

        $reloaded = [System.Collections.Generic.List[object]]::new()
        # As a runbook would run it: every error stops.
        $failure = Get-ThrownError {
            $ErrorActionPreference = 'Stop'
            Invoke-ClusterReload -Session $Machines -Name 'release' | ForEach-Object { $reloaded.Add($_) }
        }

        $failure.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadMachineFailed,Cluster.Commands.InvokeClusterReloadCommand'
        $failure.TargetObject | Should -Be '127.0.0.1 (session m2)'
        $failure.Exception.Machine | Should -Be '127.0.0.1 (session m2)'
        $failure.Exception.Message | Should -BeLike 'Invoke-ClusterReload failed on 127.0.0.1 (session m2): *this version is broken*'
        $failure.Exception.Message | Should -BeLike '*done on 127.0.0.1 (session m1); not touched, still on the release they run: 127.0.0.1 (session m3)*'
        $failure.Exception.RemoteError.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadNewInstanceExited,Cluster.Commands.InvokeClusterReloadCommand'
        $failure.Exception.RemoteError.OriginInfo.RunspaceID | Should -Be $Machines[1].Runspace.InstanceId
        @($reloaded.RunspaceId) | Should -Be @($Machines[0].Runspace.InstanceId) -Because 'what the first machine did is still output'
        foreach ($newPid in Get-MachinePid $Machines[0] 'release') { $newPid | Should -Not -BeIn $before.m1 }
        Get-MachinePid $Machines[1] 'release' | Should -Be $before.m2 -Because 'the old instances keep serving when the new one exits'
        Get-MachinePid $Machines[2] 'release' | Should -Be $before.m3 -Because 'the rollout never reached the third machine'

        # Two machines at a time: the first two go together, and the third still waits for both.
        $firstAgain = Get-MachinePid $Machines[0] 'release'
        $parallelFailure = Get-ThrownError { Invoke-ClusterReload -Session $Machines -Name 'release' -MaxParallelMachines 2 -ErrorAction Stop | Out-Null }
        $parallelFailure.Exception.Message | Should -BeLike '*(done on 127.0.0.1 (session m1); not touched, still on the release they run: 127.0.0.1 (session m3))*'
        foreach ($newPid in Get-MachinePid $Machines[0] 'release') { $newPid | Should -Not -BeIn $firstAgain }
        Get-MachinePid $Machines[2] 'release' | Should -Be $before.m3
    }

    It 'applies a deployment file read here on every machine, and Set-ClusterApp changes the app on each' {
        $release = Join-Path $TestHome 'release'
        New-Item -ItemType Directory -Path $release | Out-Null
        Copy-Item (Join-Path $Fixtures 'app.js') $release
        $file = Join-Path $release 'cluster.psd1'
        Set-Content -Path $file -Value "@{ Apps = @(@{ Name = 'deployed'; Path = './app.js'; Instances = 2; EnvironmentFromSession = @('PORT') }) }"
        $ports = @{}
        foreach ($machine in $Machines) {
            $ports[$machine.Name] = Get-FreePort
            Invoke-Command -Session $machine -ArgumentList $ports[$machine.Name] -ScriptBlock { param($port) $env:PORT = "$port" }
        }

        $applied = @(Sync-ClusterApp -Session $Machines -Path $file -ErrorAction Stop)
        $again = @(Sync-ClusterApp -Session $Machines -Path $file -ErrorAction Stop)
        $scaled = @(Set-ClusterApp -Session $Machines -Name 'deployed' -Instances 3 -PassThru -ErrorAction Stop)

        @($applied.RunspaceId) | Should -Be @($Machines.Runspace.InstanceId)
        foreach ($result in $applied) {
            $result.PSObject.TypeNames[0] | Should -Be 'Deserialized.Cluster.SyncResult'
            $result.Action.ToString() | Should -Be 'Started'
        }
        @($again | ForEach-Object { $_.Action.ToString() } | Select-Object -Unique) | Should -Be @('Unchanged')
        ($applied | Format-Table | Out-String) | Should -Match 'deployed\s+Started'
        @(Get-ChildItem -Force $release | ForEach-Object Name | Sort-Object) | Should -Be @('app.js', 'cluster.psd1') -Because 'the copy each machine applied is removed'
        @($scaled.RunspaceId) | Should -Be @($Machines.Runspace.InstanceId)
        foreach ($machine in $Machines) {
            (Get-MachinePid $machine 'deployed').Count | Should -Be 3
            (Invoke-TestRequest -Port $ports[$machine.Name]).pid | Should -BeIn (Get-MachinePid $machine 'deployed')
        }
    }

    It 'names a machine without the module, with another version or out of reach, and changes nothing anywhere' {
        $bare = New-TestMachine -Ssh $Ssh -Name 'bare' -ModulePath ''
        $otherModules = Join-Path $TestHome 'other-modules'
        New-Item -ItemType Directory -Path (Join-Path $otherModules 'Cluster') | Out-Null
        Set-Content -Path (Join-Path $otherModules 'Cluster/Cluster.psd1') -Value "@{ ModuleVersion = '9.9.9'; RootModule = '' }"
        $older = New-TestMachine -Ssh $Ssh -Name 'older' -ModulePath $otherModules
        Start-FleetApp -Name 'guarded' | Out-Null
        $before = Get-MachinePid $Machines[0] 'guarded'
        $version = (Get-Module Cluster).Version.ToString()

        $missing = Get-ThrownError { Invoke-ClusterReload -Session $Machines[0], $bare -Name 'guarded' -ErrorAction Stop }
        $mismatch = Get-ThrownError { Invoke-ClusterReload -Session $Machines[0], $older -Name 'guarded' -ErrorAction Stop }
        $closed = New-TestMachine -Ssh $Ssh -Name 'closed' -ModulePath $ModuleRoot
        Remove-PSSession $closed
        $unreachable = Get-ThrownError { Invoke-ClusterReload -Session $Machines[0], $closed -Name 'guarded' -ErrorAction Stop }
        Invoke-ClusterReload -Session $Machines[0] -Name 'guarded' -WhatIf
        $readErrors = $null
        $read = @(Get-ClusterApp -Session $Machines[0], $bare -Name 'guarded' -ErrorVariable readErrors -ErrorAction SilentlyContinue)

        $missing.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadModuleMissing,Cluster.Commands.InvokeClusterReloadCommand'
        $missing.CategoryInfo.Category | Should -Be 'NotInstalled'
        $missing.Exception.Message | Should -BeLike "127.0.0.1 (session bare) does not have the Cluster module. Install Cluster $version there*"
        $mismatch.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadModuleVersionMismatch,Cluster.Commands.InvokeClusterReloadCommand'
        $mismatch.Exception.Message | Should -BeLike "127.0.0.1 (session older) has Cluster 9.9.9, not $version*"
        $unreachable.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadMachineFailed,Cluster.Commands.InvokeClusterReloadCommand'
        $unreachable.Exception.Message | Should -BeLike 'Invoke-ClusterReload could not reach 127.0.0.1 (session closed): *The rollout stopped there (no machine was changed; not touched, still on the release they run: 127.0.0.1 (session m1))*'
        Get-MachinePid $Machines[0] 'guarded' | Should -Be $before -Because 'every machine is checked before the first one is touched, and -WhatIf touches none'
        $read.Count | Should -Be 1
        @($readErrors).Count | Should -Be 1
        $readErrors[0].FullyQualifiedErrorId | Should -Be 'GetClusterAppModuleMissing,Cluster.Commands.GetClusterAppCommand'
    }
}
