#Requires -Version 7.0
# Readiness and health end to end: -WaitReady, the HTTP check on each new instance's own loopback port, the
# stability window and liveness checks, against a real host running tests/fixtures/health/app.js on loopback
# ports. Run by build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule

    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/health')).Path
    $script:PSDefaultParameterValues = @{ 'Start-TestApp:Fixtures' = $Fixtures }
    $script:Flags = Join-Path $TestHome 'flags'
    New-Item -ItemType Directory -Path $Flags | Out-Null

    function Get-InstancePid {
        param([Parameter(Mandatory)] $App)
        @($App.Instances | Sort-Object Instance | ForEach-Object Pid)
    }

    function Get-OutputLine {
        param([Parameter(Mandatory)] [string] $Name)
        @(Get-ClusterAppLog -Name $Name -Tail 10000 | Where-Object Stream -EQ 'Out' | ForEach-Object Text)
    }

    # The Date.now() the fixture wrote with '<event> <pid> <ms>'.
    function Get-EventTime {
        param([Parameter(Mandatory)] [string] $Name, [Parameter(Mandatory)] [string] $Event, [Parameter(Mandatory)] [int] $ProcessId)
        $line = Get-OutputLine -Name $Name | Where-Object { $_ -like "$Event $ProcessId *" } | Select-Object -First 1
        if (-not $line) { return $null }
        [long] ($line -split ' ')[2]
    }

    function Get-HostLogLine {
        @(Get-Content -Path (Join-Path $TestHome 'logs/host.log'))
    }
}

AfterAll {
    Remove-TestClusterHome -Path $TestHome
}

Describe 'Readiness checks during a reload' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction SilentlyContinue
        Get-ChildItem -Path $Flags | Remove-Item -Force
    }

    It 'stops the reload at a new version that listens but fails its HTTP check, the old pids serving' {
        $flag = Join-Path $Flags 'unhealthy'
        $app = Start-TestApp -Script app.js -Name failing-check -Environment @{ UNHEALTHY_FLAG = $flag } -StartParameters @{ HealthCheckPath = '/health'; HealthCheckTimeout = 1500 }
        $oldPids = Get-InstancePid $app
        New-Item -ItemType File -Path $flag | Out-Null

        $failure = Get-ThrownError { Invoke-ClusterReload -Name failing-check -ErrorAction Stop }

        $failure.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadHealthCheckFailed,Cluster.Commands.InvokeClusterReloadCommand'
        $failure.CategoryInfo.Category | Should -Be 'InvalidResult'
        $failure.Exception.Message | Should -Match 'failed its readiness check: GET /health on 127\.0\.0\.1:\d+ \(pid \d+\) answered HTTP/1\.1 500'
        $failure.Exception.Message | Should -Match 'the old worker keeps serving'
        $failure.Exception.Message | Should -Match 'Its last output:'
        $after = Get-ClusterApp -Name failing-check
        "$($after.Status)" | Should -Be 'ReloadFailed'
        Get-InstancePid $after | Should -Be $oldPids
        Get-AnsweringPid -Port $app.Port -ExpectedPid $oldPids | Should -Be ($oldPids | Sort-Object)
    }

    It 'checks each new instance on its own port: the old instances, on the shared port, would have passed' {
        # The old version answers /health with 200 and keeps serving the shared port during the reload; a check
        # sent there would pass. The new version answers 500: the reload stops only because the check reached it.
        $flag = Join-Path $Flags 'unhealthy'
        $app = Start-TestApp -Script app.js -Name own-port -Instances 1 -Environment @{ UNHEALTHY_FLAG = $flag } -StartParameters @{ HealthCheckPath = '/health'; HealthCheckTimeout = 1000 }
        $oldPid = Get-InstancePid $app
        New-Item -ItemType File -Path $flag | Out-Null

        $failure = Get-ThrownError { Invoke-ClusterReload -Name own-port -ErrorAction Stop }

        $failure.Exception.Message -match '\(pid (\d+)\) answered HTTP/1\.1 500' | Should -BeTrue
        $newPid = [int] $Matches[1]
        $newPid | Should -Not -Be $oldPid
        Get-OutputLine -Name own-port | Should -Contain "health $newPid"
        @(1..20 | ForEach-Object { (Invoke-TestRequest -Port $app.Port).pid } | Sort-Object -Unique) | Should -Be @($oldPid)
    }

    It 'loses no request under load across a healthy reload with the HTTP check, WaitReady and the stability window on' {
        $app = Start-TestApp -Script app.js -Name healthy -StartParameters @{ HealthCheckPath = '/health'; WaitReady = $true; StabilityWindow = 500 }
        $oldPids = Get-InstancePid $app
        $load = Start-LoadClient -Port $app.Port -Connection keep-alive -MaxSeconds 40

        try {
            $after = Invoke-ClusterReload -Name healthy -ErrorAction Stop
        }
        finally {
            $result = Stop-LoadClient -Client $load
        }

        "$($after.Status)" | Should -Be 'Online'
        $newPids = Get-InstancePid $after
        foreach ($newPid in $newPids) {
            $newPid | Should -Not -BeIn $oldPids
            Get-OutputLine -Name healthy | Should -Contain "health $newPid" -Because "pid $newPid answered its own check"
        }
        $result.failed | Should -Be 0 -Because "errors: $($result.errors | ConvertTo-Json -Compress)"
        $result.ok | Should -BeGreaterThan 0
    }

    It "does not cut over to an instance that listens at once but says 'ready' a second later" {
        $app = Start-TestApp -Script app.js -Name slow-ready -Instances 1
        $oldPid = Get-InstancePid $app

        Set-ClusterApp -Name slow-ready -WaitReady -Environment @{ READY_DELAY_MS = '1000' } -ErrorAction Stop
        $after = Get-ClusterApp -Name slow-ready

        $newPid = Get-InstancePid $after
        $newPid | Should -Not -Be $oldPid
        Wait-Until { $null -ne (Get-EventTime -Name slow-ready -Event disconnect -ProcessId $oldPid) } -TimeoutSeconds 10 -Because 'the old worker to log its disconnect'
        $listened = Get-EventTime -Name slow-ready -Event listening -ProcessId $newPid
        $ready = Get-EventTime -Name slow-ready -Event ready -ProcessId $newPid
        $disconnected = Get-EventTime -Name slow-ready -Event disconnect -ProcessId $oldPid
        $ready | Should -BeGreaterThan $listened
        $disconnected | Should -BeGreaterOrEqual $ready -Because "the old worker is retired only once the new one said 'ready'"
        (Export-ClusterApp -Name slow-ready) -join "`n" | Should -Match 'WaitReady = \$true'
    }

    It 'does not cut over to a version that exits 300 ms after it listens, the old pids serving' {
        $flag = Join-Path $Flags 'exit'
        $app = Start-TestApp -Script app.js -Name exits-early -Environment @{ EXIT_FLAG = $flag }
        $oldPids = Get-InstancePid $app
        New-Item -ItemType File -Path $flag | Out-Null

        $failure = Get-ThrownError { Invoke-ClusterReload -Name exits-early -ErrorAction Stop }

        $failure.FullyQualifiedErrorId | Should -Be 'InvokeClusterReloadNewInstanceExited,Cluster.Commands.InvokeClusterReloadCommand'
        $failure.Exception.Message | Should -Match 'exited with code 3 within 1000 ms of being ready'
        $failure.Exception.Message | Should -Match 'health-fixture: self-check failed'
        $after = Get-ClusterApp -Name exits-early
        "$($after.Status)" | Should -Be 'ReloadFailed'
        Get-InstancePid $after | Should -Be $oldPids
        @($after.Instances | Where-Object { "$($_.Status)" -ne 'Online' }) | Should -HaveCount 0
        Get-AnsweringPid -Port $app.Port -ExpectedPid $oldPids | Should -Be ($oldPids | Sort-Object)
    }
}

Describe 'Liveness checks' {
    AfterEach {
        Get-ClusterApp | Remove-ClusterApp -Confirm:$false -ErrorAction SilentlyContinue
    }

    It 'replaces a SIGSTOPped worker after its liveness failures, saying why' -Skip:(-not $IsLinux) {
        $app = Start-TestApp -Script app.js -Name hung -StartParameters @{
            HealthCheckPath = '/health'; HealthCheckTimeout = 500; LivenessInterval = 500; LivenessFailures = 2
        }
        $hungPid, $otherPid = Get-InstancePid $app
        & kill -STOP $hungPid
        try {
            Wait-Until {
                $now = Get-ClusterApp -Name hung
                $zero = $now.Instances | Where-Object Instance -EQ 0
                $zero.Pid -and $zero.Pid -ne $hungPid -and "$($zero.Status)" -eq 'Online' -and $zero.Reason
            } -TimeoutSeconds 40 -Because 'the hung instance to be replaced, and to say why'
        }
        finally {
            if (Test-ProcessAlive -Id $hungPid) { & kill -CONT $hungPid }
        }

        $after = Get-ClusterApp -Name hung
        ($after.Instances | Where-Object Instance -EQ 1).Pid | Should -Be $otherPid
        ($after.Instances | Where-Object Instance -EQ 0).Reason | Should -Match "pid $hungPid failed its liveness check 2 times in a row"
        Wait-Until { -not (Test-ProcessRunning -Id $hungPid) } -TimeoutSeconds 15 -Because 'the hung worker to be gone'
        @(Get-HostLogLine | Where-Object { $_ -match "Replacing instance 0 of hung \(pid $hungPid\): it failed its liveness check 2 times in a row" }) | Should -HaveCount 1
        Get-AnsweringPid -Port $app.Port -ExpectedPid (Get-InstancePid $after) | Should -Be (Get-InstancePid $after | Sort-Object)
    }
}
