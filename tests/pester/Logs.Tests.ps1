#Requires -Version 7.0
# Instance logs end to end: Get-ClusterAppLog -Follow across many rotations of a busy log, rotation on line
# boundaries, the cap on a line's length, and symbolic links planted at log paths. Real host, real Node apps of
# tests/fixtures/logs on 127.0.0.1. Run by build.ps1 -Task Test, which sets CLUSTER_MODULE_PATH to the built
# Cluster.psd1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:TestHome = New-TestClusterHome
    $script:Fixtures = (Resolve-Path (Join-Path $PSScriptRoot '../fixtures/logs')).Path
    $script:Logs = Join-Path $TestHome 'logs'
    # Outside CLUSTER_HOME, as a file another user would want the owner's apps to write to.
    $script:Outside = Join-Path ([IO.Path]::GetTempPath()) ('cl-target-' + [guid]::NewGuid().ToString('n').Substring(0, 10))
    New-Item -ItemType Directory -Path $Outside | Out-Null

    # "line <n> <x repeated n % 150 times> end <n>": the lines tests/fixtures/logs/numbered.js writes.
    $script:NumberedLine = [regex]::new('^line (\d+) (x*) end (\d+)$', 'Compiled')
    # The stamp the Node primary begins each line of a log file with: its time and the writer's pid.
    $script:Stamp = '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \d+ '

    # Starts a fixture with one instance on a free port (PORT); returns the app with its port as a note property.
    function Start-LogApp {
        param(
            [Parameter(Mandatory)] [string] $Script,
            [Parameter(Mandatory)] [string] $Name,
            [hashtable] $Environment = @{},
            [hashtable] $StartParameters = @{},
            [int] $Instances = 1
        )
        $port = Get-FreePort
        $app = Start-ClusterApp -Path (Join-Path $Fixtures $Script) -Name $Name -Instances $Instances `
            -Environment (@{ PORT = "$port" } + $Environment) @StartParameters -ErrorAction Stop
        $app | Add-Member -NotePropertyName Port -NotePropertyValue $port -PassThru
    }

    # The numbers of the intact numbered lines among the texts, in order, and the texts that are not one (torn or
    # foreign). One loop over all of them: a function call per line would cost seconds here.
    function Split-NumberedLines([string[]] $Texts) {
        $numbers = [System.Collections.Generic.List[int]]::new()
        $others = [System.Collections.Generic.List[string]]::new()
        foreach ($text in $Texts) {
            $match = $NumberedLine.Match($text)
            if ($match.Success -and $match.Groups[1].Value -eq $match.Groups[3].Value -and $match.Groups[2].Length -eq ([int] $match.Groups[1].Value) % 150) {
                $numbers.Add([int] $match.Groups[1].Value)
            }
            else {
                $others.Add($text)
            }
        }
        [pscustomobject]@{ Numbers = $numbers; Others = $others }
    }

    # An instance's log files, oldest first: name.N ... name.1, name.
    function Get-LogFiles([string] $Name) {
        $rotated = @(Get-ChildItem -Path $Logs -Filter "$Name.*" | Where-Object { $_.Name -match '\.(\d+)$' } |
                Sort-Object { [int] ($_.Name -replace '^.*\.(\d+)$', '$1') } -Descending)
        @($rotated) + @(Get-Item (Join-Path $Logs $Name))
    }

    # Runs Get-ClusterAppLog -Follow in another runspace, as a user's session would; Stop-Follow ends it like Ctrl+C.
    function Start-Follow([string] $Name, [int] $Tail = 1) {
        $shell = [powershell]::Create()
        $output = [System.Management.Automation.PSDataCollection[psobject]]::new()
        $null = $shell.AddScript({
                param($ModulePath, $AppName, $Tail)
                Import-Module $ModulePath
                Get-ClusterAppLog -Name $AppName -Follow -Tail $Tail
            }).AddArgument($env:CLUSTER_MODULE_PATH).AddArgument($Name).AddArgument($Tail)
        $invocation = $shell.BeginInvoke([System.Management.Automation.PSDataCollection[psobject]]::new(), $output)
        [pscustomobject]@{ Shell = $shell; Output = $output; Invocation = $invocation }
    }

    function Stop-Follow($Follow) {
        $stopping = $Follow.Shell.BeginStop($null, $null)
        $stopped = $stopping.AsyncWaitHandle.WaitOne(15000)
        # A pipeline that would not stop is left to end with the process, rather than hang the suite here.
        if ($stopped) { $Follow.Shell.Dispose() }
        $stopped
    }

    # What the follow received so far. Enumerating an open PSDataCollection waits for it to close: read by index.
    function Get-Followed($Follow) {
        $output = $Follow.Output
        for ($i = 0; $i -lt $output.Count; $i++) { $output[$i] }
    }

    # Waits until each instance of a talker.js app has written its TALK_TOTAL lines (and they reached its log).
    function Wait-Talked([string] $Name, [int] $Instances, [int] $Total = 40) {
        Wait-Until {
            $said = @(Get-ClusterAppLog $Name -Stream Out -Tail 1000 | Where-Object Text -Like 'talk *')
            @($said | Group-Object Instance | Where-Object Count -GE $Total).Count -eq $Instances
        } -TimeoutSeconds 30 -Because "every instance of $Name to write its $Total lines"
    }

    function Remove-AllApps {
        Get-ClusterApp -ErrorAction SilentlyContinue | Remove-ClusterApp -Confirm:$false -ErrorAction SilentlyContinue
    }
}

AfterAll {
    Remove-TestClusterHome $TestHome
    Remove-Item -Recurse -Force $Outside -ErrorAction SilentlyContinue
}

Describe 'Get-ClusterAppLog -Follow' {
    AfterEach { Remove-AllApps }

    It 'receives every line exactly once, none torn, across 20 and more rotations of a 2 MB/s log' {
        $total = 80000 # about 7.8 MB in 4 s: 22 rotations at 350000 bytes
        $maxSize = 350000
        $app = Start-LogApp -Script 'numbered.js' -Name busy -Environment @{ NUMBERED_TOTAL = "$total" } `
            -StartParameters @{ LogMaxSize = $maxSize; LogFileCount = 100 }
        $log = Join-Path $Logs 'busy-0.out.log'
        Wait-Until { @(Get-LogText $log) -contains 'numbered ready' } -Because 'the app to be ready'

        $follow = Start-Follow busy
        $stopped = $false
        try {
            Wait-Until { @(Get-Followed $follow | Where-Object Text -EQ 'numbered ready').Count -eq 1 } -Because '-Follow to write the last line before it follows'
            $null = Invoke-TestRequest -Port $app.Port -Path '/start'
            $lastLine = "line $total $('x' * ($total % 150)) end $total"
            Wait-Until { $follow.Output.Count -gt 0 -and $follow.Output[$follow.Output.Count - 1].Text -eq $lastLine } -TimeoutSeconds 60 `
                -Because "-Follow to receive line $total"
            # Two more rounds of reading, in which a line read twice would come out again.
            Start-Sleep -Milliseconds 600
        }
        finally {
            $stopped = Stop-Follow $follow
        }
        $stopped | Should -BeTrue -Because 'stopping the pipeline ends -Follow'

        $rotations = @(Get-LogFiles 'busy-0.out.log').Count - 1
        $rotations | Should -BeGreaterOrEqual 20 -Because 'the log was rotated at every 350000 bytes'
        $received = [System.Collections.Generic.List[string]]::new()
        foreach ($line in Get-Followed $follow) {
            if ("$($line.Stream)" -eq 'Out') { $received.Add($line.Text) }
        }
        $received[0] | Should -Be 'numbered ready'
        $split = Split-NumberedLines $received.GetRange(1, $received.Count - 1)
        $numbers = $split.Numbers
        $torn = $split.Others
        $torn.Count | Should -Be 0 -Because "no line may be torn, and these were: $(($torn | Select-Object -First 3 | ForEach-Object { $_.Substring(0, [math]::Min(60, $_.Length)) }) -join ' | ')"
        $numbers.Count | Should -Be $total -Because "every line arrives exactly once across $rotations rotations"
        for ($i = 0; $i -lt $total; $i++) {
            if ($numbers[$i] -ne $i + 1) {
                throw "Line $($i + 1) was not where it belongs: line $($numbers[$i]) came instead (line $($i) was the one before)."
            }
        }
    }
}

Describe 'Log rotation' {
    AfterEach { Remove-AllApps }

    It 'rotates between two lines: each file holds whole lines only, and together they hold every line once' {
        $total = 40000 # about 3.9 MB, 26 rotations at 150000 bytes
        $maxSize = 150000
        $app = Start-LogApp -Script 'numbered.js' -Name rotating -Environment @{ NUMBERED_TOTAL = "$total" } `
            -StartParameters @{ LogMaxSize = $maxSize; LogFileCount = 100 }
        $log = Join-Path $Logs 'rotating-0.out.log'
        Wait-Until { @(Get-LogText $log) -contains 'numbered ready' } -Because 'the app to be ready'
        $null = Invoke-TestRequest -Port $app.Port -Path '/start'
        Wait-Until { (Invoke-TestRequest -Port $app.Port).written -eq $total } -TimeoutSeconds 60 -Because "the app to write its $total lines"
        Wait-Until { (Get-LogText $log | Select-Object -Last 1) -like "line $total *" } -Because 'the last line to reach the log'

        $files = Get-LogFiles 'rotating-0.out.log'
        $files.Count | Should -BeGreaterOrEqual 20
        $numbers = [System.Collections.Generic.List[int]]::new()
        foreach ($file in $files) {
            $bytes = [IO.File]::ReadAllBytes($file.FullName)
            $bytes.Length | Should -BeLessOrEqual $maxSize -Because "$($file.Name) is rotated before it passes $maxSize bytes"
            $bytes[-1] | Should -Be 10 -Because "$($file.Name) ends with a whole line"
            $lines = [Text.Encoding]::UTF8.GetString($bytes).TrimEnd("`n").Split("`n") -replace $Stamp, ''
            $split = Split-NumberedLines $lines
            $torn = @($split.Others | Where-Object { $_ -ne 'numbered ready' })
            $torn.Count | Should -Be 0 -Because "$($file.Name) holds whole lines only, and these are not: $(($torn | Select-Object -First 3 | ForEach-Object { $_.Substring(0, [math]::Min(60, $_.Length)) }) -join ' | ')"
            $numbers.AddRange($split.Numbers)
        }
        $numbers.Count | Should -Be $total
        $numbers[0] | Should -Be 1
        $numbers[$total - 1] | Should -Be $total
        [System.Collections.Generic.HashSet[int]]::new($numbers).Count | Should -Be $total -Because 'no line is in two files'
    }

    It 'writes a line longer than 64 KiB with no newline in pieces of at most 64 KiB, each a line, none splitting a character' {
        $null = Start-LogApp -Script 'long-line.js' -Name longline -Environment @{ LONG_LINE_BYTES = '200000' }
        $log = Join-Path $Logs 'longline-0.out.log'
        Wait-Until { @(Get-LogText $log) -contains 'after the long line' } -Because 'the app to finish its long line'

        $bytes = [IO.File]::ReadAllBytes($log)
        $bytes[-1] | Should -Be 10
        $pieces = [System.Collections.Generic.List[byte[]]]::new()
        for ($start = 0; $start -lt $bytes.Length; $start = $newline + 1) {
            $newline = [Array]::IndexOf($bytes, [byte] 10, $start)
            $piece = [byte[]]::new($newline - $start)
            [Array]::Copy($bytes, $start, $piece, 0, $piece.Length)
            $pieces.Add($piece)
        }
        $texts = @($pieces | ForEach-Object { [Text.Encoding]::UTF8.GetString($_) -replace $Stamp, '' })
        $texts[-1] | Should -Be 'after the long line'
        $long = $pieces | Select-Object -SkipLast 1
        @($long).Count | Should -Be 4 -Because '200000 bytes make three pieces of 64 KiB and a rest'
        foreach ($piece in $long) { [Text.Encoding]::UTF8.GetByteCount(([Text.Encoding]::UTF8.GetString($piece) -replace $Stamp, '')) | Should -BeLessOrEqual 65536 }
        ($texts | Select-Object -SkipLast 1) -join '' | Should -BeExactly (('é' * 99999) + '!') -Because 'the pieces, put together, are the line, each piece whole characters'
        ($texts -join '').Contains([char] 0xFFFD) | Should -BeFalse -Because 'no piece ends inside a character'
    }
}

Describe 'Symbolic links at log paths' -Skip:$IsWindows {
    # Skip reason: O_NOFOLLOW and symbolic links made by a user are Unix matters.
    AfterEach { Remove-AllApps }

    It 'refuses to start a worker whose log path is a symbolic link, says why, and writes nothing through it' {
        $null = Start-LogApp -Script 'numbered.js' -Name linked
        $log = Join-Path $Logs 'linked-0.out.log'
        Wait-Until { @(Get-LogText $log) -contains 'numbered ready' } -Because 'the app to be ready'
        Stop-ClusterApp -Name linked -ErrorAction Stop
        $target = Join-Path $Outside 'linked-target.txt'
        Set-Content -Path $target -Value 'the target, untouched'
        Remove-Item $log
        New-Item -ItemType SymbolicLink -Path $log -Target $target | Out-Null

        $failure = { Restart-ClusterApp -Name linked -ErrorAction Stop } | Should -Throw -PassThru

        $failure.FullyQualifiedErrorId | Should -Be 'RestartClusterAppInstanceExited,Cluster.Commands.RestartClusterAppCommand'
        $failure.Exception.Message | Should -BeLike "*the log file $log is a symbolic link*Remove it*"
        # Between its tries the instance waits out its restart delay, and says why it is not online.
        Wait-Until { (Get-ClusterApp linked).Instances[0].Reason -like '*is a symbolic link*' } -Because 'the instance to say why it does not start'
        (Get-Content (Join-Path $Logs 'host.log')) -like "*did not start*$log is a symbolic link*" | Should -Not -BeNullOrEmpty -Because 'the primary reports the refusal in the host log'
        Get-Content -Raw $target | Should -BeExactly "the target, untouched$([Environment]::NewLine)"
        (Get-Item $log).LinkType | Should -Be 'SymbolicLink' -Because 'the link is left for its owner to look at'
    }

    It 'never writes through a symbolic link planted at a running app''s log, even when the log is emptied in place' {
        $total = 20000 # about 2 MB: emptied some 20 times at 100000 bytes, keeping no rotated file
        $app = Start-LogApp -Script 'numbered.js' -Name planted -Environment @{ NUMBERED_TOTAL = "$total" } `
            -StartParameters @{ LogMaxSize = 100000; LogFileCount = 0 }
        $log = Join-Path $Logs 'planted-0.out.log'
        Wait-Until { @(Get-LogText $log) -contains 'numbered ready' } -Because 'the app to be ready'
        $target = Join-Path $Outside 'planted-target.txt'
        Set-Content -Path $target -Value 'the target, untouched'
        Remove-Item $log
        New-Item -ItemType SymbolicLink -Path $log -Target $target | Out-Null

        $null = Invoke-TestRequest -Port $app.Port -Path '/start'
        Wait-Until { (Invoke-TestRequest -Port $app.Port).written -eq $total } -TimeoutSeconds 60 -Because "the app to write its $total lines"
        Start-Sleep -Milliseconds 500 # the primary writes what it read of them

        Get-Content -Raw $target | Should -BeExactly "the target, untouched$([Environment]::NewLine)"
        (Get-Item $log).LinkType | Should -Be 'SymbolicLink'
        (Get-ClusterApp planted).Status | Should -Be 'Online' -Because 'the app goes on serving'
    }
}

Describe 'Get-ClusterAppLog lines' {
    BeforeAll {
        $script:Talk = Start-LogApp -Script 'talker.js' -Name talk -Instances 2
        Wait-Talked talk -Instances 2
        $script:TalkPids = @{}
        foreach ($instance in (Get-ClusterApp talk).Instances) { $TalkPids[$instance.Instance] = $instance.Pid }
        $script:AllLines = @(Get-ClusterAppLog talk -Tail 1000)
    }

    AfterAll { Remove-AllApps }

    It 'merges the lines of all instances and both streams in time order, each with its time, pid and stream' {
        $AllLines.Count | Should -Be (2 * (40 + 10)) -Because 'each instance wrote 40 lines to stdout and 10 to stderr'
        foreach ($line in $AllLines) {
            $line | Should -BeOfType ([Cluster.LogLine])
            $line.App | Should -Be 'talk'
            $line.Timestamp | Should -BeOfType ([datetime])
            $line.Pid | Should -Be $TalkPids[$line.Instance] -Because "line '$($line.Text)' was written by instance $($line.Instance)"
            $expected = if ($line.Text -like 'complain *') { 'Err' } else { 'Out' }
            "$($line.Stream)" | Should -Be $expected
            $line.Text | Should -Match "^(talk|complain) $($line.Instance) \d+$"
        }
        for ($i = 1; $i -lt $AllLines.Count; $i++) {
            $AllLines[$i].Timestamp | Should -BeGreaterOrEqual $AllLines[$i - 1].Timestamp -Because "line $i comes after line $($i - 1)"
        }
        $switches = 0
        for ($i = 1; $i -lt $AllLines.Count; $i++) { if ($AllLines[$i].Instance -ne $AllLines[$i - 1].Instance) { $switches++ } }
        $switches | Should -BeGreaterThan 10 -Because 'two instances writing at once interleave, rather than come one after the other'
        $started = (Get-ClusterApp talk).Instances[0].StartTime
        $AllLines[0].Timestamp | Should -BeGreaterOrEqual $started.AddSeconds(-2) -Because 'a line is stamped when it is written, not long before'
    }

    It 'with -Since returns only the lines stamped at or after that time' {
        $since = $AllLines[60].Timestamp
        $expected = @($AllLines | Where-Object Timestamp -GE $since)

        $lines = @(Get-ClusterAppLog talk -Since $since)

        $lines.Count | Should -Be $expected.Count
        $lines.Count | Should -BeLessThan $AllLines.Count
        foreach ($line in $lines) { $line.Timestamp | Should -BeGreaterOrEqual $since }
        @(Get-ClusterAppLog talk -Since (Get-Date).AddMinutes(5)) | Should -BeNullOrEmpty
    }

    It 'with -Stream Err returns only what the instances wrote to stderr' {
        $lines = @(Get-ClusterAppLog talk -Stream Err -Tail 1000)

        $lines.Count | Should -Be 20
        foreach ($line in $lines) { "$($line.Stream)" | Should -Be 'Err'; $line.Text | Should -BeLike 'complain *' }
        @(Get-ClusterAppLog talk -Stream Out -Tail 1000).Count | Should -Be 80
    }

    It 'shows a line with its time, pid, app, instance and stream' {
        $PSStyle.OutputRendering = 'PlainText'
        $line = $AllLines[0]
        $text = $line | Out-String -Width 250
        $time = $line.Timestamp.ToString('yyyy-MM-dd HH:mm:ss.fff', [cultureinfo]::InvariantCulture)
        $text.Trim() | Should -BeExactly "$time [$($line.Pid)] talk[$($line.Instance)] $("$($line.Stream)".ToLowerInvariant()) | $($line.Text)"
    }
}

Describe 'Get-ClusterAppLog of several apps' {
    BeforeAll {
        $null = Start-LogApp -Script 'talker.js' -Name many-a
        $null = Start-LogApp -Script 'talker.js' -Name many-b
        $null = Start-LogApp -Script 'talker.js' -Name other
        Wait-Talked many-a -Instances 1
        Wait-Talked many-b -Instances 1
        Wait-Talked other -Instances 1
    }

    AfterAll { Remove-AllApps }

    It 'reads the apps a wildcard matches, merged in time order' {
        $lines = @(Get-ClusterAppLog 'many-*' -Tail 1000)

        @($lines.App | Sort-Object -Unique) | Should -Be @('many-a', 'many-b')
        $lines.Count | Should -Be 100
        for ($i = 1; $i -lt $lines.Count; $i++) { $lines[$i].Timestamp | Should -BeGreaterOrEqual $lines[$i - 1].Timestamp }
    }

    It 'reads every app when no name is given' {
        @(Get-ClusterAppLog -Tail 1000).App | Sort-Object -Unique | Should -Be @('many-a', 'many-b', 'other')
    }

    It 'reads the apps piped to it, as app objects and as names, merged in time order' {
        $fromApps = @(Get-ClusterApp many-b, other | Get-ClusterAppLog -Tail 1000)
        $fromNames = @('other', 'many-a' | Get-ClusterAppLog -Tail 1000)

        @($fromApps.App | Sort-Object -Unique) | Should -Be @('many-b', 'other')
        @($fromNames.App | Sort-Object -Unique) | Should -Be @('many-a', 'other')
        foreach ($lines in $fromApps, $fromNames) {
            $lines.Count | Should -Be 100
            for ($i = 1; $i -lt $lines.Count; $i++) { $lines[$i].Timestamp | Should -BeGreaterOrEqual $lines[$i - 1].Timestamp }
            ($lines | Select-Object -First 50 -ExpandProperty App | Sort-Object -Unique).Count | Should -Be 2 -Because 'the apps interleave'
        }
    }

    It 'reports a name that is no app, and reads the others' {
        $lines = @(Get-ClusterAppLog nothing-here, other -Tail 1000 -ErrorVariable failures -ErrorAction SilentlyContinue)

        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -Be 'GetClusterAppLogAppNotFound,Cluster.Commands.GetClusterAppLogCommand'
        "$($failures[0].CategoryInfo.Category)" | Should -Be 'ObjectNotFound'
        @($lines.App | Sort-Object -Unique) | Should -Be @('other')
    }
}

Describe 'Clear-ClusterAppLog' {
    AfterEach { Remove-AllApps }

    It 'changes nothing with -WhatIf, then empties the logs and removes the rotated files; the app writes on' {
        $app = Start-LogApp -Script 'talker.js' -Name flushed -StartParameters @{ LogMaxSize = 400; LogFileCount = 3 }
        Wait-Until { @(Get-ClusterAppLog flushed -Stream Out -Tail 1).Text -contains 'talk 0 40' } -Because 'the app to write its 40 lines'
        $out = Join-Path $Logs 'flushed-0.out.log'
        "$out.1" | Should -Exist -Because 'the log rotated at 400 bytes'
        $before = @(Get-ClusterAppLog flushed -Tail 1000).Count

        Clear-ClusterAppLog flushed -WhatIf
        @(Get-ClusterAppLog flushed -Tail 1000).Count | Should -Be $before
        "$out.1" | Should -Exist

        Get-ClusterApp flushed | Clear-ClusterAppLog -Confirm:$false

        @(Get-ClusterAppLog flushed -Tail 1000) | Should -BeNullOrEmpty
        @(Get-ChildItem $Logs -Filter 'flushed-0.*' | Where-Object Name -Match '\.log\.\d+$') | Should -BeNullOrEmpty
        (Get-Item $out).Length | Should -Be 0
        $null = Invoke-TestRequest -Port $app.Port -Path '/say?text=after%20the%20flush'
        Wait-Until { @(Get-ClusterAppLog flushed).Text -contains 'after the flush' } -Because 'the app to write on to its emptied log'
        @(Get-LogText $out) | Should -Be @('after the flush') -Because 'the next line starts the emptied file'
    }
}

Describe 'A log moved away by logrotate' {
    AfterEach { Remove-AllApps }

    It 'is reopened at its path, and -Follow goes on across the move' {
        $app = Start-LogApp -Script 'talker.js' -Name moved -Environment @{ TALK_TOTAL = '1' }
        Wait-Talked moved -Instances 1 -Total 1
        $out = Join-Path $Logs 'moved-0.out.log'
        $follow = Start-Follow moved
        try {
            Wait-Until { @(Get-Followed $follow).Text -contains 'talk 0 1' } -Because '-Follow to write the last line before it follows'
            $null = Invoke-TestRequest -Port $app.Port -Path '/say?text=before%20the%20move'
            Wait-Until { @(Get-Followed $follow).Text -contains 'before the move' } -Because '-Follow to read the line before the move'

            Move-Item $out "$out.1" # what logrotate does without copytruncate
            Start-Sleep -Milliseconds 1500 # the primary looks for moved logs once a second
            $null = Invoke-TestRequest -Port $app.Port -Path '/say?text=after%20the%20move'

            Wait-Until { @(Get-LogText $out) -contains 'after the move' } -Because 'the primary to write to a new file at the path'
            Wait-Until { @(Get-Followed $follow).Text -contains 'after the move' } -Because '-Follow to go on with the new file'
        }
        finally {
            Stop-Follow $follow | Should -BeTrue
        }
        @(Get-LogText "$out.1") | Should -Not -Contain 'after the move'
        @(Get-Followed $follow | Where-Object Stream -EQ 'Out').Text | Should -Be @('talk 0 1', 'before the move', 'after the move')
    }
}

Describe 'The logs of an app whose start failed' {
    It 'quotes the line that names the error, and stay readable' {
        $port = Get-FreePort
        $taken = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $port)
        $taken.Start()
        try {
            $failure = Get-ThrownError {
                Start-ClusterApp -Path (Join-Path $Fixtures 'numbered.js') -Name unstarted -Environment @{ PORT = "$port" } -ErrorAction Stop
            }
        }
        finally {
            $taken.Stop()
        }

        $failure.FullyQualifiedErrorId | Should -Be 'StartClusterAppInstanceExited,Cluster.Commands.StartClusterAppCommand'
        # A cluster worker's listen is done by its primary, which reports it as 'bind'; a process of its own says 'listen'.
        $failure.Exception.Message | Should -Match "says: `"Error: (listen|bind) EADDRINUSE(: address already in use)? 127\.0\.0\.1:$port`"\."
        $failure.Exception.Message | Should -Not -BeLike '*    at *' -Because 'the stack trace is left in the log'
        @(Get-ClusterApp | Where-Object Name -EQ 'unstarted') | Should -BeNullOrEmpty

        $errors = @(Get-ClusterAppLog unstarted -Stream Err -Tail 100)
        @($errors.Text -match "^Error: (listen|bind) EADDRINUSE") | Should -Not -BeNullOrEmpty
        foreach ($line in $errors) { $line.App | Should -Be 'unstarted'; $line.Pid | Should -BeGreaterThan 0 }
        Clear-ClusterAppLog unstarted -Confirm:$false
        @(Get-ClusterAppLog unstarted -Tail 100) | Should -BeNullOrEmpty
    }
}
