#Requires -Version 7.0
# A Node primary that stops answering (SIGSTOP) is noticed: the host kills it and its workers, and brings its apps
# back on a new primary with the same NODE_APP_INSTANCE values, counting the restart; meanwhile no status says
# online for a worker that is gone. Real host, real Node apps of tests/fixtures/resilience on 127.0.0.1.
# Run by build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Server = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/resilience/server.js')).Path

    # Running, and not a zombie waiting to be reaped.
    function Test-Running([int] $Id) {
        $stat = try { [IO.File]::ReadAllText("/proc/$Id/stat") } catch { return $false }
        $stat.Substring($stat.LastIndexOf(')') + 2, 1) -ne 'Z'
    }
}

AfterAll {
    Remove-TestClusterHome $TestHome
}

Describe 'A Node primary that stops answering' -Skip:(-not $IsLinux) {
    It 'is killed with its workers; the app answers again from new workers, Restarts counts it, and no status said online for a dead worker' {
        $port = Get-FreePort
        $app = Start-ClusterApp $Server -Name frozen -Instances 2 -Environment @{ PORT = "$port" } -ErrorAction Stop
        $oldPids = @($app.Instances | Sort-Object Instance | ForEach-Object Pid)
        $primary = (Get-Process -Id $oldPids[0]).Parent.Id
        (Get-Process -Id $oldPids[1]).Parent.Id | Should -Be $primary

        & kill -STOP $primary
        $seen = [System.Collections.Generic.List[string]]::new()
        try {
            $deadline = [DateTime]::UtcNow.AddSeconds(60)
            $back = $false
            while (-not $back -and [DateTime]::UtcNow -lt $deadline) {
                # Dead before the question was asked: the answer must not call them online.
                $deadBefore = @($oldPids | Where-Object { -not (Test-Running $_) })
                $now = Get-ClusterApp frozen -ErrorAction Stop
                foreach ($instance in $now.Instances) {
                    $seen.Add("$($instance.Instance):$($instance.Status):$($instance.Pid)")
                    if ($instance.Status -eq 'Online') {
                        $instance.Pid | Should -Not -BeNullOrEmpty -Because "instance $($instance.Instance) is reported online"
                        $instance.Pid | Should -Not -BeIn $deadBefore -Because "instance $($instance.Instance) is reported online with pid $($instance.Pid), which had exited"
                    }
                }
                $back = $now.Status -eq 'Online' -and @($now.Instances | Where-Object { $_.Pid -in $oldPids }).Count -eq 0
                if (-not $back) { Start-Sleep -Milliseconds 100 }
            }
            $back | Should -BeTrue -Because "the app was to be back on new workers within 60 s (statuses seen: $($seen | Select-Object -Unique))"
        }
        finally {
            & kill -CONT $primary 2>$null
        }

        Test-Running $primary | Should -BeFalse -Because 'the host killed the primary that did not answer'
        foreach ($old in $oldPids) { Test-Running $old | Should -BeFalse -Because "worker $old ended with its primary" }

        $final = Get-ClusterApp frozen
        $newPids = @($final.Instances | Sort-Object Instance | ForEach-Object Pid)
        $newPrimary = (Get-Process -Id $newPids[0]).Parent.Id
        $newPrimary | Should -Not -Be $primary
        $final.Instances | ForEach-Object { $_.Restarts | Should -Be 1 -Because "instance $($_.Instance) was restarted once" }
        $answers = @(1..20 | ForEach-Object { Invoke-TestRequest -Port $port })
        @($answers.pid | Sort-Object -Unique) | Should -Be @($newPids | Sort-Object)
        @($answers | Where-Object { $_.instance -eq 0 } | ForEach-Object pid | Select-Object -Unique) | Should -Be $newPids[0] -Because 'instance 0 kept its NODE_APP_INSTANCE'
        @($answers | Where-Object { $_.instance -eq 1 } | ForEach-Object pid | Select-Object -Unique) | Should -Be $newPids[1] -Because 'instance 1 kept its NODE_APP_INSTANCE'
        Get-Content (Join-Path $TestHome 'logs/host.log') -Raw | Should -Match "Node primary $primary has not answered"

        Remove-ClusterApp frozen -Confirm:$false
    }
}
