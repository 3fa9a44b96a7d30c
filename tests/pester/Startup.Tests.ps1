#Requires -Version 7.0
# Start at boot: Register-ClusterStartup writes a systemd user unit that systemd-analyze accepts, the host runs
# in the foreground as the unit runs it, a restart of the unit leaves the apps serving (KillMode=process) and the
# next host takes them back, and Stop-ClusterHost leaves the apps stopped for whatever host comes next. The
# launchd property list and the scheduled task's XML are checked in xunit (StartupFilesTests). Run by
# build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1; .ci/run installs systemd.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule

    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/reload')).Path
    $script:SavedConfigHome = $env:XDG_CONFIG_HOME
    $script:ConfigHome = Join-Path ([IO.Path]::GetTempPath()) ('cl-config-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
    $env:XDG_CONFIG_HOME = $ConfigHome
    $script:UnitPath = Join-Path $ConfigHome 'systemd/user/cluster-host.service'
    $script:UnitLink = Join-Path $ConfigHome 'systemd/user/default.target.wants/cluster-host.service'
    $script:Started = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()

    # The words of a systemd command line as Register-ClusterStartup writes them: each one quoted.
    function ConvertFrom-SystemdWords([string] $Line) {
        foreach ($match in [regex]::Matches($Line, '"((?:[^"\\]|\\.)*)"')) {
            $match.Groups[1].Value -replace '\\(.)', '$1' -replace '%%', '%' -replace '\$\$', '$'
        }
    }

    function Get-UnitSetting([string] $Name) {
        $line = Get-Content $UnitPath | Where-Object { $_ -like "$Name=*" } | Select-Object -First 1
        $line.Substring($Name.Length + 1)
    }

    # Starts the host exactly as the unit says (ExecStart, Environment, WorkingDirectory), as a child of this
    # process, the way systemd runs a Type=simple service: not detached, its output captured.
    function Start-UnitHost {
        [string[]] $command = ConvertFrom-SystemdWords (Get-UnitSetting 'ExecStart')
        $start = [System.Diagnostics.ProcessStartInfo]::new($command[0])
        foreach ($argument in $command[1..($command.Count - 1)]) { $start.ArgumentList.Add($argument) }
        foreach ($assignment in ConvertFrom-SystemdWords (Get-UnitSetting 'Environment')) {
            $name, $value = $assignment -split '=', 2
            $start.Environment[$name] = $value
        }
        $start.WorkingDirectory = Get-UnitSetting 'WorkingDirectory'
        $start.UseShellExecute = $false
        $start.RedirectStandardOutput = $true
        $start.RedirectStandardError = $true
        $process = [System.Diagnostics.Process]::Start($start)
        $Started.Add($process)
        $process
    }

    # Waits for the host the unit started to say it serves (no cmdlet is run before: it would start a host of its own).
    function Wait-HostPid([int] $Id) {
        $log = Join-Path $TestHome 'logs/host.log'
        Wait-Until { (Test-Path $log) -and (Select-String -LiteralPath $log -SimpleMatch "started: pid $Id," -Quiet) } -TimeoutSeconds 30 -Because "the host $Id to start"
        (Get-ClusterHost).Pid | Should -Be $Id
    }

    # The session id of a process (field 6 of /proc/<pid>/stat): a host that detached itself leads its own.
    function Get-SessionId([int] $Id) {
        $stat = Get-Content -Raw "/proc/$Id/stat"
        [int] ($stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')[3])
    }

    function Send-Terminate([int] $Id) {
        & kill -TERM $Id
        if ($LASTEXITCODE) { throw "kill -TERM $Id failed." }
    }
}

AfterAll {
    foreach ($process in $Started) {
        if (-not $process.HasExited) { $process.Kill() }
        $process.Dispose()
    }
    Remove-TestClusterHome
    $env:XDG_CONFIG_HOME = $SavedConfigHome
    Remove-Item -Recurse -Force $ConfigHome -ErrorAction SilentlyContinue
}

Describe 'Register-ClusterStartup on Linux' -Skip:(-not $IsLinux) {
    It '-WhatIf shows the unit it would write, whole, and writes and copies nothing' {
        $path = [Environment]::ProcessPath
        [string[]] $prefix = if ([IO.Path]::GetFileNameWithoutExtension($path) -eq 'pwsh') { @() } else { @(Join-Path $PSHOME 'pwsh.dll') }
        $output = & $path @prefix -NoProfile -NonInteractive -Command "Import-Module '$env:CLUSTER_MODULE_PATH'; Register-ClusterStartup -WhatIf" 2>&1 | Out-String
        $LASTEXITCODE | Should -Be 0 -Because $output
        $output | Should -Match ([regex]::Escape("What if: Write the systemd unit that starts the Cluster host of $TestHome at boot: $UnitPath"))
        foreach ($line in '[Unit]', '[Service]', '[Install]', 'KillMode=process', 'WantedBy=default.target') {
            $output | Should -Match ('(?m)^' + [regex]::Escape($line) + '\s*$') -Because "the unit's text is shown"
        }
        $output | Should -Match ('(?m)^ExecStart=.*' + [regex]::Escape("$TestHome/runtime/") + '.*--foreground')
        $UnitPath | Should -Not -Exist
        Join-Path $TestHome 'runtime' | Should -Not -Exist
    }

    It 'writes the user unit, enabled in default.target.wants, running the runtime copy in the foreground' {
        $startup = Register-ClusterStartup -Confirm:$false

        $startup.Kind | Should -Be 'Systemd'
        $startup.Scope | Should -Be 'User'
        $startup.Path | Should -Be $UnitPath
        $startup.Home | Should -Be $TestHome
        (Get-Item $UnitLink).Target | Should -Be $UnitPath
        $runtime = Join-Path $TestHome 'runtime/' | Resolve-Path
        $startup.Command[0] | Should -BeLike "$runtime*/cluster-host"
        $startup.Command | Should -Contain '--foreground'
        (Get-Item $startup.Command[0]).UnixFileMode.HasFlag([IO.UnixFileMode]::UserExecute) | Should -BeTrue
        [string[]] (ConvertFrom-SystemdWords (Get-UnitSetting 'ExecStart')) | Should -Be ([string[]] $startup.Command)
        Get-UnitSetting 'KillMode' | Should -Be 'process'
        Get-UnitSetting 'Type' | Should -Be 'simple'
        Get-UnitSetting 'Restart' | Should -Be 'on-failure'
        Get-UnitSetting 'WantedBy' | Should -Be 'default.target'
        (Get-Item $UnitPath).UnixFileMode | Should -Be ([IO.UnixFileMode] 'UserRead, UserWrite, GroupRead, OtherRead')
    }

    It 'passes systemd-analyze verify' {
        $analyze = Get-Command systemd-analyze -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
        $analyze | Should -Not -BeNullOrEmpty -Because 'systemd-analyze (Debian package systemd; .ci/run installs it) checks the unit'
        $output = & $analyze.Source verify $UnitPath 2>&1 | Out-String
        $LASTEXITCODE | Should -Be 0 -Because $output
        $output | Should -Not -Match 'cluster-host\.service:' -Because "systemd-analyze has nothing to say about the unit: $output"
    }

    It 'runs the host in the foreground as the unit does; a restart of the unit keeps the apps serving and the next host takes them back' {
        $unitHost = Start-UnitHost
        Wait-HostPid $unitHost.Id
        Get-SessionId $unitHost.Id | Should -Not -Be $unitHost.Id -Because 'a host in the foreground stays in the session the service manager gave it'

        $port = Get-FreePort
        $app = Start-ClusterApp -Path (Join-Path $Fixtures 'app.js') -Name boot -Instances 2 -Environment @{ PORT = "$port" }
        $app.Status | Should -Be 'Online'
        $workers = @($app.Instances.Pid | Sort-Object)

        # systemctl restart with KillMode=process: SIGTERM to the host alone.
        Send-Terminate $unitHost.Id
        $unitHost.WaitForExit(30000) | Should -BeTrue
        $unitHost.ExitCode | Should -Be 0 -Because 'a stop of the service is a clean exit'
        foreach ($worker in $workers) { Test-ProcessAlive -Id $worker | Should -BeTrue -Because "worker $worker outlives the host" }
        (Invoke-TestRequest -Port $port).pid | Should -BeIn $workers

        $next = Start-UnitHost
        Wait-HostPid $next.Id
        $back = Get-ClusterApp boot
        $back.Status | Should -Be 'Online'
        @($back.Instances.Pid | Sort-Object) | Should -Be $workers -Because 'the next host took back the workers that kept serving'
        $script:UnitHostNow = $next
        $script:Port = $port
    }

    It 'exits with 3, which the unit counts as success, when another host already serves the CLUSTER_HOME' {
        $second = Start-UnitHost
        $second.WaitForExit(30000) | Should -BeTrue
        $second.ExitCode | Should -Be 3
        Get-UnitSetting 'SuccessExitStatus' | Should -Be '3'
        (Get-ClusterHost).Pid | Should -Be $UnitHostNow.Id
    }

    It 'Stop-ClusterHost stops the apps, and the next host, started by a read-only cmdlet, leaves them stopped' {
        $workers = @((Get-ClusterApp boot).Instances.Pid)
        Stop-ClusterHost -Confirm:$false
        $UnitHostNow.WaitForExit(30000) | Should -BeTrue
        $UnitHostNow.ExitCode | Should -Be 0 -Because 'Restart=on-failure does not start a host that was stopped on purpose'
        foreach ($worker in $workers) { Wait-Until { -not (Test-ProcessAlive -Id $worker) } -TimeoutSeconds 10 -Because "worker $worker to stop" }

        $after = Get-ClusterApp boot
        (Get-ClusterHost).Pid | Should -Not -Be $UnitHostNow.Id
        $after.Status | Should -Be 'Stopped'
        @($after.Instances | Where-Object Pid).Count | Should -Be 0
        { Invoke-TestRequest -Port $Port } | Should -Throw

        $restarted = Restart-ClusterApp -Name boot -PassThru
        $restarted.Status | Should -Be 'Online'
        (Invoke-TestRequest -Port $Port).pid | Should -BeIn @($restarted.Instances.Pid)
    }

    It 'Unregister-ClusterStartup -WhatIf keeps the unit; without it, the unit and its link go' {
        Unregister-ClusterStartup -WhatIf
        $UnitPath | Should -Exist

        Unregister-ClusterStartup -Confirm:$false
        $UnitPath | Should -Not -Exist
        Test-Path $UnitLink | Should -BeFalse
        (Get-Item $UnitLink -ErrorAction SilentlyContinue) | Should -BeNullOrEmpty -Because 'no dangling link is left'
    }
}
