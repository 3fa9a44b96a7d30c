#Requires -Version 7.0
# The state file as a database, and what it holds. A host is killed with SIGKILL (its Node primaries and workers go
# on serving), its state file is truncated, garbled, given the wrong shape or deleted, and the next host must keep
# every app serving with the same processes, manage it (a reload works), say what it found (Get-ClusterHost), and
# save the definitions back. Then: the environment an app gets is exactly what the state file holds, with no
# session secret in either; bad environment names, oversized requests and out-of-range raw requests get clear
# errors and the host stays up. Real host, real Node apps on 127.0.0.1.
# Run by build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:Resilience = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/resilience')).Path
    $script:Integrity = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/integrity')).Path
    $script:ServerScript = Join-Path $Resilience 'server.js'
    $script:EnvDumpScript = Join-Path $Integrity 'env-dump.js'
    $script:OwnerOnly = [IO.UnixFileMode] 'UserRead, UserWrite'

    function Get-SortedPid([string] $Name) {
        @((Get-ClusterApp $Name -ErrorAction Stop).Instances | ForEach-Object Pid | Sort-Object)
    }

    function Stop-HostHard {
        $clusterHost = Get-ClusterHost -ErrorAction Stop
        Stop-Process -Id $clusterHost.Pid -Force # SIGKILL: the primaries and their workers go on serving
        Wait-Until { -not (Test-ProcessAlive -Id $clusterHost.Pid) } -Because 'the host to die of SIGKILL'
        $clusterHost.Pid
    }

    # The saved definitions of the app of that name (one, unless the state file is wrong).
    function Read-SavedApp([string] $Name) {
        $state = Get-Content -Raw (Join-Path $env:CLUSTER_HOME 'state.json') | ConvertFrom-Json -AsHashtable
        , @($state['apps'] | Where-Object { $_['spec']['name'] -eq $Name })
    }

    function Get-WorkerEnvironment([int] $Port) {
        (Invoke-WebRequest -Uri "http://127.0.0.1:$Port/" -DisableKeepAlive -TimeoutSec 10).Content | ConvertFrom-Json -AsHashtable
    }
}

# The state file is plain JSON on Unix (on Windows it is encrypted with DPAPI), so these tests can damage it by hand.
Describe 'A damaged state file while no host runs' -Skip:$IsWindows {
    BeforeEach {
        $script:TestHome = New-TestClusterHome
        $script:StateFile = Join-Path $TestHome 'state.json'
    }

    AfterEach {
        Remove-TestClusterHome $TestHome
    }

    It 'keeps both apps serving with the same workers, manages them, reports it and saves them back, when the state file is <Case>' -TestCases @(
        @{ Case = 'truncated'; Says = '*is not a readable state file*moved aside*recovered from its backup*'; FromBackup = $true; Aside = $true }
        @{ Case = 'garbage'; Says = '*is not a readable state file*moved aside*recovered from its backup*'; FromBackup = $true; Aside = $true }
        @{ Case = 'apps null'; Says = '*has no list of apps*moved aside*recovered from its backup*'; FromBackup = $true; Aside = $true }
        @{ Case = 'deleted'; Says = '*was missing*recovered from its backup*'; FromBackup = $true; Aside = $false }
        @{ Case = 'deleted with its backup'; Says = "*did not know the app 'web'*"; FromBackup = $false; Aside = $false }
    ) {
        param($Case, $Says, $FromBackup, $Aside)
        $web = Start-FixtureApp -Path $ServerScript -Name web -Instances 2
        # Its save keeps the version with 'web' alone as the backup: 'web' comes back from there, 'aux' (which the
        # backup does not know) from the definition its Node primary kept.
        $aux = Start-FixtureApp -Path $ServerScript -Name aux -Instances 1
        "$StateFile.bak" | Should -Exist
        $webPids = Get-SortedPid web
        $auxPids = Get-SortedPid aux
        $deadHost = Stop-HostHard

        $bad = switch ($Case) {
            'truncated' { $bytes = [IO.File]::ReadAllBytes($StateFile); $bytes[0..([int]($bytes.Length / 2))] }
            'garbage' { $random = [Random]::new(10); $bytes = [byte[]]::new(512); $random.NextBytes($bytes); $bytes }
            'apps null' { [Text.Encoding]::UTF8.GetBytes('{"apps":null}') }
            'deleted' { Remove-Item $StateFile; $null }
            'deleted with its backup' { Remove-Item $StateFile, "$StateFile.bak"; $null }
        }
        if ($null -ne $bad) { [IO.File]::WriteAllBytes($StateFile, [byte[]] $bad) }
        # While there is no host, the apps serve on.
        Get-AnsweringPid -Port $web.Port -ExpectedPid $webPids | Should -Be $webPids

        $apps = @(Get-ClusterApp -ErrorAction Stop)
        $newHost = Get-ClusterHost
        $newHost.Pid | Should -Not -Be $deadHost
        @($apps.Name | Sort-Object) | Should -Be @('aux', 'web')
        Wait-Until { (Get-ClusterApp web).Status -eq 'Online' -and (Get-ClusterApp aux).Status -eq 'Online' } -Because 'both apps to be online under the new host'
        Get-SortedPid web | Should -Be $webPids -Because 'the new host takes back the running workers, it does not start new ones'
        Get-SortedPid aux | Should -Be $auxPids
        Get-AnsweringPid -Port $web.Port -ExpectedPid $webPids | Should -Be $webPids
        Get-AnsweringPid -Port $aux.Port -ExpectedPid $auxPids | Should -Be $auxPids

        $newHost.StateProblem | Should -BeLike $Says
        $newHost.StateProblem | Should -BeLike "*did not know the app 'aux'*"
        (Get-Content (Join-Path $TestHome 'logs/host.log') | Where-Object { $_ -like '*`[ERR`]*' -or $_ -like '*`[WRN`]*' }) -join "`n" |
            Should -BeLike "*aux*" -Because 'the host log says what the host found'
        $corrupt = @(Get-ChildItem $TestHome -Filter 'state.json.corrupt-*')
        if ($Aside) {
            $corrupt.Count | Should -Be 1
            $corrupt[0].UnixFileMode | Should -Be $OwnerOnly
            [IO.File]::ReadAllBytes($corrupt[0].FullName) | Should -Be ([byte[]] $bad) -Because 'the bad file is kept as it was, for its owner to look at'
            $newHost.StateProblem | Should -BeLike "*$($corrupt[0].Name)*"
        }
        else {
            $corrupt | Should -BeNullOrEmpty
        }

        # Saved back at once: the state file is whole again, owner only, and knows both apps.
        (Get-Item $StateFile).UnixFileMode | Should -Be $OwnerOnly
        (Read-SavedApp web).Count | Should -Be 1
        (Read-SavedApp aux).Count | Should -Be 1
        (Read-SavedApp web)[0]['spec']['instances'] | Should -Be 2
        (Read-SavedApp web)[0]['spec']['environment']['PORT'] | Should -Be "$($web.Port)"
        (Read-SavedApp aux)[0]['spec']['environment']['PORT'] | Should -Be "$($aux.Port)"

        # And managed: a reload replaces the workers taken back.
        foreach ($app in @(@{ Name = 'web'; Port = $web.Port; Old = $webPids }, @{ Name = 'aux'; Port = $aux.Port; Old = $auxPids })) {
            $reloaded = Invoke-ClusterReload -Name $app.Name -ErrorAction Stop
            $newPids = @($reloaded.Instances.Pid | Sort-Object)
            foreach ($old in $app.Old) { $newPids | Should -Not -Contain $old }
            Get-AnsweringPid -Port $app.Port -ExpectedPid $newPids | Should -Be $newPids
            Wait-Until { -not ($app.Old | Where-Object { Test-ProcessAlive -Id $_ }) } -Because "the old workers of $($app.Name) to be retired"
        }
    }

    It 'starts cleanly after a recovery: the next host finds a sound state file and reports nothing' {
        $null = Start-FixtureApp -Path $ServerScript -Name web -Instances 1
        $null = Start-FixtureApp -Path $ServerScript -Name aux -Instances 1
        $null = Stop-HostHard
        [IO.File]::WriteAllText($StateFile, '{"apps":null}')
        (Get-ClusterHost).StateProblem | Should -Not -BeNullOrEmpty
        # The host answers while it is still taking the apps back; it saves the recovered state once it has.
        Wait-Until { (Test-Path $StateFile) -and (Read-SavedApp web).Count -eq 1 -and (Read-SavedApp aux).Count -eq 1 } -Because 'the recovered state to be saved back'

        $null = Stop-HostHard
        $clusterHost = Get-ClusterHost

        $clusterHost.StateProblem | Should -BeNullOrEmpty
        @((Get-ClusterApp).Name | Sort-Object) | Should -Be @('aux', 'web')
        @(Get-ChildItem $TestHome -Filter 'state.json.corrupt-*').Count | Should -Be 1
    }
}

Describe 'The environment an app gets and the state file holds' -Skip:$IsWindows {
    BeforeAll {
        $script:TestHome = New-TestClusterHome
        $script:Secret = "secret-$([guid]::NewGuid().ToString('n'))"
        $script:Planted = @{ MY_SECRET_TOKEN = $Secret; NODE_AUTH_TOKEN = "npm-$Secret"; LC_CLUSTER_TEST = 'inherited-lc'; NODE_CLUSTER_TEST = 'inherited-node' }
        foreach ($name in $Planted.Keys) { [Environment]::SetEnvironmentVariable($name, $Planted[$name]) }
        # What Node itself puts into a worker's environment, beside what the host passed.
        $script:AddedByNode = @('NODE_APP_INSTANCE', 'NODE_UNIQUE_ID', 'NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE')
    }

    AfterAll {
        foreach ($name in $Planted.Keys) { [Environment]::SetEnvironmentVariable($name, $null) }
        Remove-TestClusterHome $TestHome
    }

    It 'saves exactly the environment the workers run with: the inherited session variables and -Environment, no secret' {
        $app = Start-FixtureApp -Path $EnvDumpScript -Name envdump -Instances 2 -Environment @{ APP_SETTING = 'from-parameter'; HOME = '/srv/override' }

        $saved = (Read-SavedApp envdump)[0]['spec']['environment']
        $reply = Get-WorkerEnvironment -Port $app.Port
        $worker = $reply['env']
        $fromHost = @{}
        foreach ($name in $worker.Keys) { if ($name -notin $AddedByNode) { $fromHost[$name] = $worker[$name] } }

        @($saved.Keys | Sort-Object) | Should -Be @($fromHost.Keys | Sort-Object)
        foreach ($name in $saved.Keys) { $fromHost[$name] | Should -BeExactly $saved[$name] -Because "$name is the same in the state file and the worker" }
        $worker['NODE_APP_INSTANCE'] | Should -Be "$($reply['instance'])"

        foreach ($name in 'MY_SECRET_TOKEN', 'NODE_AUTH_TOKEN') {
            $saved.Keys | Should -Not -Contain $name -Because "$name of the session is not on the list an app inherits"
            $worker.Keys | Should -Not -Contain $name
        }
        (Get-Content -Raw (Join-Path $TestHome 'state.json')) | Should -Not -BeLike "*$Secret*"
        $saved['LC_CLUSTER_TEST'] | Should -Be 'inherited-lc'
        $saved['NODE_CLUSTER_TEST'] | Should -Be 'inherited-node'
        $saved['PATH'] | Should -Be $env:PATH
        $saved['CLUSTER_HOME'] | Should -Be $TestHome
        $saved['APP_SETTING'] | Should -Be 'from-parameter'
        $saved['HOME'] | Should -Be '/srv/override' -Because '-Environment overrides what is inherited'
        $session = [Environment]::GetEnvironmentVariables()
        foreach ($name in $session.Keys) {
            if ($name -notin @('HOME', 'PORT', 'APP_SETTING')) {
                if ($saved.ContainsKey($name)) { $saved[$name] | Should -BeExactly $session[$name] }
            }
        }
        (Get-Item (Join-Path $TestHome 'state.json')).UnixFileMode | Should -Be $OwnerOnly
    }

    It 'passes and saves the whole session with -InheritEnvironment' {
        $app = Start-FixtureApp -Path $EnvDumpScript -Name everything -Instances 1 -StartParameters @{ InheritEnvironment = $true }

        $saved = (Read-SavedApp everything)[0]['spec']['environment']
        $worker = (Get-WorkerEnvironment -Port $app.Port)['env']

        $saved['MY_SECRET_TOKEN'] | Should -Be $Secret
        $worker['MY_SECRET_TOKEN'] | Should -Be $Secret
        $saved['NODE_AUTH_TOKEN'] | Should -Be "npm-$Secret"
    }

    It 'keeps the environment through a host restart: the app comes back with the same variables' {
        $app = Start-FixtureApp -Path $EnvDumpScript -Name lasting -Instances 1 -Environment @{ APP_SETTING = 'kept' }
        $before = (Read-SavedApp lasting)[0]['spec']['environment']

        # Stop-ClusterHost leaves the app stopped; the next host starts it again from what was saved.
        Stop-ClusterHost -Confirm:$false
        (Get-ClusterApp lasting).Status | Should -Be 'Stopped'
        $null = Restart-ClusterApp lasting
        Wait-Until { (Get-ClusterApp lasting).Status -eq 'Online' } -TimeoutSeconds 30 -Because "'lasting' to be started again"

        $worker = (Get-WorkerEnvironment -Port $app.Port)['env']
        $worker['APP_SETTING'] | Should -Be 'kept'
        $worker.Keys | Should -Not -Contain 'MY_SECRET_TOKEN'
        $after = (Read-SavedApp lasting)[0]['spec']['environment']
        @($after.Keys | Sort-Object) | Should -Be @($before.Keys | Sort-Object)
    }
}

Describe 'Environment names, request sizes and what one request may ask' {
    BeforeAll {
        $script:TestHome = New-TestClusterHome
        $script:Steady = Start-FixtureApp -Path $ServerScript -Name steady -Instances 1
        $script:HostPid = (Get-ClusterHost).Pid
        $script:Endpoint = (Get-ClusterHost).Endpoint

        function Assert-HostStillServes {
            (Get-ClusterHost -ErrorAction Stop).Pid | Should -Be $HostPid -Because 'the host must survive the request'
            (Get-ClusterApp steady -ErrorAction Stop).Status | Should -Be 'Online'
            $null = Invoke-TestRequest -Port $Steady.Port
            @(Get-ClusterApp).Name | Should -Be @('steady') -Because 'a refused request leaves no app behind'
        }

        function Assert-RawRefused($Reply, [string] $Code) {
            $Reply.timedOut | Should -BeFalse -Because 'the host answers at once instead of working on the request'
            $Reply.frames.Count | Should -Be 1 -Because "the reply was: $($Reply | ConvertTo-Json -Depth 5 -Compress)"
            $Reply.frames[0]['done'] | Should -BeTrue
            $Reply.frames[0]['error']['code'] | Should -Be $Code
            $Reply.frames[0]['error']['message'] | Should -Not -BeNullOrEmpty
        }

        function New-RawStart([hashtable] $Overrides) {
            $start = @{ name = 'raw'; script = $ServerScript; workingDirectory = $Resilience; instances = 1; environment = @{ PORT = '0' } }
            foreach ($key in $Overrides.Keys) { $start[$key] = $Overrides[$key] }
            @{ command = 'start'; start = $start } | ConvertTo-Json -Compress -Depth 5
        }
    }

    AfterAll {
        Remove-TestClusterHome $TestHome
    }

    It 'refuses the environment name <Label> with StartClusterAppInvalidEnvironment, starting nothing' -TestCases @(
        @{ Label = 'with =' ; Environment = @{ 'A=B' = 'x' } }
        @{ Label = 'that is empty'; Environment = @{ '' = 'x' } }
        @{ Label = 'with a NUL'; Environment = @{ "A`0B" = 'x' } }
        @{ Label = 'with a NUL in its value'; Environment = @{ GOOD = "x`0y" } }
    ) {
        param($Label, $Environment)
        $caught = Get-ThrownError { Start-ClusterApp $ServerScript -Name badenv -Environment $Environment -ErrorAction Stop }

        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -Be 'StartClusterAppInvalidEnvironment,Cluster.Commands.StartClusterAppCommand'
        $caught.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $caught.Exception.Message | Should -BeLike '*-Environment*'
        Get-ClusterApp badenv -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        Assert-HostStillServes
    }

    It 'refuses a 1 MB environment value with StartClusterAppRequestTooLarge before sending it' {
        $caught = Get-ThrownError { Start-ClusterApp $ServerScript -Name huge -Environment @{ BIG = 'x' * 1MB } -ErrorAction Stop }

        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -Be 'StartClusterAppRequestTooLarge,Cluster.Commands.StartClusterAppCommand'
        $caught.CategoryInfo.Category | Should -Be 'LimitsExceeded'
        $caught.Exception.Message | Should -BeLike '*1048576 bytes*'
        Assert-HostStillServes
    }

    It 'refuses a raw start whose environment has the name <Label> with InvalidEnvironment' -Skip:$IsWindows -TestCases @(
        @{ Label = 'A=B'; Environment = @{ 'A=B' = 'x'; PORT = '0' } }
        @{ Label = '(empty)'; Environment = @{ '' = 'x'; PORT = '0' } }
        @{ Label = 'A<NUL>B'; Environment = @{ "A`0B" = 'x'; PORT = '0' } }
    ) {
        param($Label, $Environment)
        Assert-RawRefused (Send-RawClusterRequest -Endpoint $Endpoint -Text (New-RawStart @{ environment = $Environment })) -Code 'InvalidEnvironment'
        Assert-HostStillServes
    }

    It 'refuses a raw log request for <Tail> lines with TailOutOfRange' -Skip:$IsWindows -TestCases @(
        @{ Tail = 2147483647 }
        @{ Tail = 100001 }
        @{ Tail = -1 }
    ) {
        param($Tail)
        $reply = Send-RawClusterRequest -Endpoint $Endpoint -Text "{`"command`":`"logs`",`"name`":`"steady`",`"logs`":{`"tail`":$Tail}}"

        Assert-RawRefused $reply -Code 'TailOutOfRange'
        $reply.frames[0]['error']['message'] | Should -BeLike '*100000*'
        Assert-HostStillServes
    }

    It 'answers a raw log request for 100000 lines, the most it allows' -Skip:$IsWindows {
        $reply = Send-RawClusterRequest -Endpoint $Endpoint -Text '{"command":"logs","name":"steady","logs":{"tail":100000}}'

        @($reply.frames | Where-Object { $_['error'] }) | Should -BeNullOrEmpty
        $reply.frames[-1]['done'] | Should -BeTrue
        Assert-HostStillServes
    }

    It 'refuses a raw start asking for <Label> rotated log files' -Skip:$IsWindows -TestCases @(
        @{ Label = '10000000'; Text = '10000000'; Code = 'LogFileCountOutOfRange' }
        @{ Label = '-1'; Text = '-1'; Code = 'LogFileCountOutOfRange' }
        @{ Label = '1e7 (not an integer)'; Text = '1e7'; Code = 'MalformedRequest' }
    ) {
        param($Label, $Text, $Code)
        $request = (New-RawStart @{ logFileCount = 424242 }).Replace('424242', $Text)

        Assert-RawRefused (Send-RawClusterRequest -Endpoint $Endpoint -Text $request) -Code $Code
        Get-ChildItem (Join-Path $TestHome 'logs') -Filter 'raw-*' | Should -BeNullOrEmpty
        Assert-HostStillServes
    }

    It 'caps -Tail and -LogFileCount in the cmdlets at the same limits' {
        (Get-ThrownError { Get-ClusterAppLog steady -Tail 100001 -ErrorAction Stop }).FullyQualifiedErrorId |
            Should -Be 'ParameterArgumentValidationError,Cluster.Commands.GetClusterAppLogCommand'
        (Get-ThrownError { Start-ClusterApp $ServerScript -Name capped -LogFileCount 1001 -ErrorAction Stop }).FullyQualifiedErrorId |
            Should -Be 'ParameterArgumentValidationError,Cluster.Commands.StartClusterAppCommand'
        Assert-HostStillServes
    }
}
