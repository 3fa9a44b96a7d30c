using System.Text.Json.Serialization;

namespace Cluster.Host;

/// <summary>A line the host writes to a Node primary (module/primary.js reads it).</summary>
internal sealed class PrimaryCommand
{
    public const string Fork = "fork";
    public const string State = "state";
    public const string Exit = "exit";
    public const string Disconnect = "disconnect";
    public const string Send = "send";
    public const string Signal = "signal";
    public const string Ping = "ping";

    public string Cmd { get; set; } = "";
    public int Key { get; set; }
    public string? App { get; set; }
    public string? Mode { get; set; }
    public string? Exec { get; set; }
    public List<string>? Args { get; set; }
    public List<string>? ExecArgv { get; set; }
    public string? Cwd { get; set; }
    public Dictionary<string, string>? Env { get; set; }
    public int? Instance { get; set; }
    public string? Out { get; set; }
    public string? Err { get; set; }
    public string? Message { get; set; }

    /// <summary>For ping: echoed in the pong.</summary>
    public long? Seq { get; set; }

    public long? LogMaxBytes { get; set; }
    public int? LogKeep { get; set; }

    /// <summary>For fork: which start of the app the worker runs, and its instance's restart count once it is in place.</summary>
    public int? Generation { get; set; }

    public int? Restarts { get; set; }

    /// <summary>For fork: the app's definition as JSON, kept by the primary so that a host without it can take the app back.</summary>
    public string? Definition { get; set; }

    [JsonPropertyName("signal")]
    public string? SignalName { get; set; }
}

/// <summary>A line a Node primary writes to the host.</summary>
internal sealed class PrimaryEvent
{
    public const string Ready = "ready";
    public const string Forked = "forked";
    public const string Listening = "listening";
    public const string Message = "message";
    public const string Disconnected = "disconnect";
    public const string Exit = "exit";
    public const string State = "state";
    public const string Pong = "pong";

    public string Event { get; set; } = "";
    public int Key { get; set; }
    public int? Pid { get; set; }
    public int? Code { get; set; }
    public string? Signal { get; set; }
    public string? Error { get; set; }

    [JsonPropertyName("message")]
    public string? Text { get; set; }

    public string? Address { get; set; }
    public int? Port { get; set; }
    public string? Node { get; set; }

    /// <summary>In a state event: the Node executable and scheduling policy the primary was started with.</summary>
    public string? NodePath { get; set; }

    public string? Scheduling { get; set; }

    /// <summary>In a state event: the primary answers pings (a primary of an older version does not, and is not watched).</summary>
    public bool? Pings { get; set; }

    /// <summary>In a pong: the sequence number of the ping it answers.</summary>
    public long? Seq { get; set; }

    public List<PrimaryWorkerState>? Workers { get; set; }
}

/// <summary>A worker as a primary describes it in its state event.</summary>
internal sealed class PrimaryWorkerState
{
    public int Key { get; set; }
    public string App { get; set; } = "";
    public int Instance { get; set; }
    public int Pid { get; set; }
    public bool Ready { get; set; }

    /// <summary>When it was forked, in milliseconds since 1970.</summary>
    public long Started { get; set; }

    public int Generation { get; set; }

    public int Restarts { get; set; }

    public int? HealthPort { get; set; }

    public string? Definition { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(PrimaryCommand))]
[JsonSerializable(typeof(PrimaryEvent))]
[JsonSerializable(typeof(SavedState))]
[JsonSerializable(typeof(AppDefinition))]
internal sealed partial class HostJson : JsonSerializerContext
{
}
