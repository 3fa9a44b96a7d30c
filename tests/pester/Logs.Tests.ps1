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

    # Starts a fixture with one instance on a free port (PORT); returns the app with its port as a note property.
    function Start-LogApp {
        param(
            [Parameter(Mandatory)] [string] $Script,
            [Parameter(Mandatory)] [string] $Name,
            [hashtable] $Environment = @{},
            [hashtable] $StartParameters = @{}
        )
        $port = Get-FreePort
        $app = Start-ClusterApp -Path (Join-Path $Fixtures $Script) -Name $Name -Instances 1 `
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
    function Start-Follow([string] $Name) {
        $shell = [powershell]::Create()
        $output = [System.Management.Automation.PSDataCollection[psobject]]::new()
        $null = $shell.AddScript({
                param($ModulePath, $AppName)
                Import-Module $ModulePath
                Get-ClusterAppLog -Name $AppName -Follow -Tail 1
            }).AddArgument($env:CLUSTER_MODULE_PATH).AddArgument($Name)
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
        Wait-Until { @(Get-Content $log -ErrorAction SilentlyContinue) -contains 'numbered ready' } -Because 'the app to be ready'

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
        Wait-Until { @(Get-Content $log -ErrorAction SilentlyContinue) -contains 'numbered ready' } -Because 'the app to be ready'
        $null = Invoke-TestRequest -Port $app.Port -Path '/start'
        Wait-Until { (Invoke-TestRequest -Port $app.Port).written -eq $total } -TimeoutSeconds 60 -Because "the app to write its $total lines"
        Wait-Until { (Get-Content $log -Tail 1) -like "line $total *" } -Because 'the last line to reach the log'

        $files = Get-LogFiles 'rotating-0.out.log'
        $files.Count | Should -BeGreaterOrEqual 20
        $numbers = [System.Collections.Generic.List[int]]::new()
        foreach ($file in $files) {
            $bytes = [IO.File]::ReadAllBytes($file.FullName)
            $bytes.Length | Should -BeLessOrEqual $maxSize -Because "$($file.Name) is rotated before it passes $maxSize bytes"
            $bytes[-1] | Should -Be 10 -Because "$($file.Name) ends with a whole line"
            $lines = [Text.Encoding]::UTF8.GetString($bytes).TrimEnd("`n").Split("`n")
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
        Wait-Until { @(Get-Content $log -ErrorAction SilentlyContinue) -contains 'after the long line' } -Because 'the app to finish its long line'

        $bytes = [IO.File]::ReadAllBytes($log)
        $bytes[-1] | Should -Be 10
        $pieces = [System.Collections.Generic.List[byte[]]]::new()
        for ($start = 0; $start -lt $bytes.Length; $start = $newline + 1) {
            $newline = [Array]::IndexOf($bytes, [byte] 10, $start)
            $piece = [byte[]]::new($newline - $start)
            [Array]::Copy($bytes, $start, $piece, 0, $piece.Length)
            $pieces.Add($piece)
        }
        $texts = @($pieces | ForEach-Object { [Text.Encoding]::UTF8.GetString($_) })
        $texts[-1] | Should -Be 'after the long line'
        $long = $pieces | Select-Object -SkipLast 1
        @($long).Count | Should -Be 4 -Because '200000 bytes make three pieces of 64 KiB and a rest'
        foreach ($piece in $long) { $piece.Length | Should -BeLessOrEqual 65536 }
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
        Wait-Until { @(Get-Content $log -ErrorAction SilentlyContinue) -contains 'numbered ready' } -Because 'the app to be ready'
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
        Wait-Until { @(Get-Content $log -ErrorAction SilentlyContinue) -contains 'numbered ready' } -Because 'the app to be ready'
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
