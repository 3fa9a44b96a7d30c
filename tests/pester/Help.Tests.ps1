#Requires -Version 7.0
# The help of the built module: every exported cmdlet has the help its docs/en-US page describes, the pages
# and the cmdlets' real parameters agree both ways, about_Cluster is found, and the converter that builds
# the help refuses pages PlatyPS would misread.

BeforeDiscovery {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:CmdletCases = @(Get-Command -Module Cluster -CommandType Cmdlet | Sort-Object Name | ForEach-Object { @{ Name = $_.Name } })
}

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'TestHelpers.psm1') -Force
    Import-ClusterModule
    $script:Module = Get-Module Cluster
    $script:DocsPath = Join-Path $PSScriptRoot '../../docs/en-US' | Resolve-Path
    $script:Converter = Join-Path $PSScriptRoot '../../tools/New-ClusterHelp.ps1' | Resolve-Path
    $script:CommonParameters = [System.Management.Automation.Cmdlet]::CommonParameters

    # The '### -Name' sections of a cmdlet's page.
    function Get-DocumentedParameter([string] $Name) {
        $page = Join-Path $DocsPath "$Name.md"
        @(Select-String -LiteralPath $page -Pattern '^### -(\w+)\s*$' | ForEach-Object { $_.Matches[0].Groups[1].Value })
    }

    # The text under '## SYNOPSIS' of a cmdlet's page, as one line without markdown code marks.
    function Get-DocumentedSynopsis([string] $Name) {
        $lines = Get-Content -LiteralPath (Join-Path $DocsPath "$Name.md")
        $start = [Array]::IndexOf($lines, '## SYNOPSIS') + 1
        $text = for ($i = $start; $i -lt $lines.Count -and -not $lines[$i].StartsWith('## '); $i++) { $lines[$i] }
        (($text -join ' ') -replace '`', '' -replace '\s+', ' ').Trim()
    }

    function Get-ParameterFact([System.Management.Automation.ParameterMetadata] $Parameter) {
        $attributes = @($Parameter.ParameterSets.Values)
        $kinds = @(
            if ($attributes.Where({ $_.ValueFromPipelineByPropertyName })) { 'ByPropertyName' }
            if ($attributes.Where({ $_.ValueFromPipeline })) { 'ByValue' }
        )
        $positions = @($attributes.Where({ $_.Position -ge 0 }))
        [ordered]@{
            Type          = $Parameter.ParameterType.Name
            Required      = [bool] $attributes.Where({ $_.IsMandatory })
            Position      = if ($positions.Count) { [string] $positions[0].Position } else { 'named' }
            PipelineInput = if ($kinds.Count) { "True ($($kinds -join ', '))" } else { 'False' }
            Globbing      = [bool] @($Parameter.Attributes).Where({ $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
            Aliases       = @($Parameter.Aliases | Sort-Object)
        }
    }

    function Get-HelpParameterFact([object] $HelpParameter) {
        $pipeline = [string] $HelpParameter.pipelineInput
        if ($pipeline -match '^True \((.+)\)$') {
            $pipeline = 'True ({0})' -f (($Matches[1] -split ',\s*' | Sort-Object) -join ', ')
        }
        [ordered]@{
            Type          = [string] $HelpParameter.type.name
            Required      = $HelpParameter.required -eq 'true'
            Position      = ([string] $HelpParameter.position).ToLowerInvariant()
            PipelineInput = $pipeline
            Globbing      = $HelpParameter.globbing -eq 'true'
            Aliases       = @(if ($HelpParameter.aliases -and $HelpParameter.aliases -ne 'none') { $HelpParameter.aliases -split ',\s*' | Sort-Object })
        }
    }
}

Describe 'Help of <Name>' -ForEach $CmdletCases {
    BeforeAll {
        $script:Command = Get-Command $Name -Module Cluster
        $script:Help = Get-Help $Name -Full
        $script:Declared = @($Command.Parameters.Keys | Where-Object { $_ -notin $CommonParameters } | Sort-Object)
    }

    It 'has the synopsis its page gives' {
        $Help.Synopsis -replace '\s+', ' ' | Should -Be (Get-DocumentedSynopsis $Name)
    }

    It 'has a description' {
        ($Help.description.Text -join ' ').Trim() | Should -Not -BeNullOrEmpty
    }

    It 'has at least two examples, each with code and an explanation' {
        $examples = @($Help.examples.example)
        $examples.Count | Should -BeGreaterOrEqual 2
        foreach ($example in $examples) {
            $example.code | Should -Not -BeNullOrEmpty -Because $example.title
            ($example.remarks.Text -join '').Trim() | Should -Not -BeNullOrEmpty -Because $example.title
        }
    }

    It 'documents on its page every parameter it has' {
        $documented = Get-DocumentedParameter $Name
        $Declared | Where-Object { $_ -notin $documented } | Should -BeNullOrEmpty -Because 'each parameter needs a ### -Name section'
    }

    It 'documents on its page no parameter it does not have' {
        Get-DocumentedParameter $Name | Where-Object { $_ -notin $Declared } | Should -BeNullOrEmpty
    }

    It 'shows in Get-Help exactly the parameters it has' {
        @($Help.parameters.parameter.name | Sort-Object) | Should -Be $Declared
    }

    It 'describes each parameter as it is declared: type, required, position, pipeline input, wildcards, aliases' {
        $differences = foreach ($parameterName in $Declared) {
            $expected = Get-ParameterFact $Command.Parameters[$parameterName]
            $actual = Get-HelpParameterFact @($Help.parameters.parameter).Where({ $_.name -eq $parameterName }, 'First')[0]
            foreach ($fact in $expected.Keys) {
                if ((@($actual[$fact]) -join ', ') -cne (@($expected[$fact]) -join ', ')) {
                    "-$parameterName $fact is '$($expected[$fact])' but its help says '$($actual[$fact])'"
                }
            }
        }
        $differences | Should -BeNullOrEmpty
    }

    It 'shows its own syntax, naming every parameter it has' {
        $syntax = @($Help.syntax.syntaxItem)
        $syntax.Count | Should -Be $Command.ParameterSets.Count
        @($syntax.parameter.name | Sort-Object -Unique) | Should -Be $Declared
    }
}

Describe 'The about_Cluster topic' {
    It 'is found by Get-Help' {
        $topic = Get-Help about_Cluster
        $topic.Name | Should -Be 'about_Cluster'
        $topic.Category | Should -Be 'HelpFile'
        $text = $topic | Out-String -Width 200
        $text | Should -Match 'NODE_APP_INSTANCE'
        $text | Should -Match 'PM2_GRACEFUL_TIMEOUT'
        $text | Should -Match "process\.send\('online'\)"
    }

    It 'is wrapped to 80 columns' {
        $file = Join-Path $Module.ModuleBase 'en-US/about_Cluster.help.txt'
        $wide = @(Get-Content -LiteralPath $file | Where-Object Length -gt 80)
        $wide | Should -BeNullOrEmpty
    }
}

Describe 'The built module manifest' {
    It 'passes Test-ModuleManifest and names the format and type files' {
        $manifest = Test-ModuleManifest -Path $env:CLUSTER_MODULE_PATH -ErrorAction Stop
        @($manifest.ExportedFormatFiles | Split-Path -Leaf) | Should -Contain 'Cluster.format.ps1xml'
        @($manifest.ExportedTypeFiles | Split-Path -Leaf) | Should -Contain 'Cluster.types.ps1xml'
    }

    It 'ships the MAML help of its cmdlet assembly with one command for each cmdlet' {
        [xml] $maml = Get-Content -Raw (Join-Path $Module.ModuleBase 'en-US/Cluster.dll-Help.xml')
        $names = $maml.helpItems.command | ForEach-Object { $_.details.name }
        @($names | Sort-Object) | Should -Be @($CmdletCases.Name | Sort-Object)
    }
}

Describe 'The help converter' {
    BeforeEach {
        $script:Docs = Join-Path $TestDrive ([guid]::NewGuid().ToString('n'))
        $script:Out = Join-Path $Docs 'out'
        $null = New-Item -ItemType Directory -Path $Docs
    }

    It 'writes the MAML file its pages name and an about topic' {
        Copy-Item (Join-Path $DocsPath 'Stop-ClusterHost.md'), (Join-Path $DocsPath 'about_Cluster.help.md') $Docs
        & $Converter -DocsPath $Docs -OutputPath $Out
        [xml] $maml = Get-Content -Raw (Join-Path $Out 'Cluster.dll-Help.xml')
        $maml.helpItems.command.details.name | Should -Be 'Stop-ClusterHost'
        Get-Content (Join-Path $Out 'about_Cluster.help.txt') -TotalCount 2 | Should -Be @('TOPIC', '    about_Cluster')
    }

    It 'refuses a page without a synopsis' {
        (Get-Content -Raw (Join-Path $DocsPath 'Stop-ClusterHost.md')) -replace '(?s)## SYNOPSIS.*?(?=## SYNTAX)', '' |
            Set-Content (Join-Path $Docs 'Stop-ClusterHost.md')
        { & $Converter -DocsPath $Docs -OutputPath $Out } | Should -Throw -PassThru |
            ForEach-Object { $_.Exception.Message } | Should -Be "Stop-ClusterHost.md: the page has no '## SYNOPSIS'."
    }

    It 'refuses a parameter without its yaml block' {
        (Get-Content -Raw (Join-Path $DocsPath 'Stop-ClusterHost.md')) -replace '(?s)(### -WhatIf.*?)```yaml.*?```', '$1' |
            Set-Content (Join-Path $Docs 'Stop-ClusterHost.md')
        { & $Converter -DocsPath $Docs -OutputPath $Out } | Should -Throw -PassThru |
            ForEach-Object { $_.Exception.Message } | Should -Be 'Stop-ClusterHost.md: parameter -WhatIf needs exactly one ```yaml block (it has 0).'
    }

    It 'refuses a syntax that names an undocumented parameter' {
        (Get-Content -Raw (Join-Path $DocsPath 'Stop-ClusterHost.md')) -replace '(?s)### -WhatIf.*?(?=### CommonParameters)', '' |
            Set-Content (Join-Path $Docs 'Stop-ClusterHost.md')
        { & $Converter -DocsPath $Docs -OutputPath $Out } | Should -Throw -PassThru |
            ForEach-Object { $_.Exception.Message } | Should -Be "Stop-ClusterHost.md: the syntax names -WhatIf, which has no '### -WhatIf' under PARAMETERS."
    }

    It 'refuses an example without code' {
        (Get-Content -Raw (Join-Path $DocsPath 'Stop-ClusterHost.md')) -replace '(?s)(### Example 1: Stop the host\s*)```powershell.*?```', '$1' |
            Set-Content (Join-Path $Docs 'Stop-ClusterHost.md')
        { & $Converter -DocsPath $Docs -OutputPath $Out } | Should -Throw -PassThru |
            ForEach-Object { $_.Exception.Message } | Should -Be "Stop-ClusterHost.md: the example 'Example 1: Stop the host' has no code block."
    }

    It 'refuses an about topic without a short description' {
        (Get-Content -Raw (Join-Path $DocsPath 'about_Cluster.help.md')) -replace '(?s)# SHORT DESCRIPTION.*?(?=# LONG DESCRIPTION)', '' |
            Set-Content (Join-Path $Docs 'about_Cluster.help.md')
        { & $Converter -DocsPath $Docs -OutputPath $Out } | Should -Throw -PassThru |
            ForEach-Object { $_.Exception.Message } | Should -Be "about_Cluster.help.md: the page has no '# SHORT DESCRIPTION'."
    }
}
