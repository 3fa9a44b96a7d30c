namespace Cluster.Host;

/// <summary>How many instances a requested count means: 0 = one per CPU, negative = CPUs minus that many.</summary>
internal static class InstanceCount
{
    /// <summary>The most instances one app may have; more is a typo, not a plan.</summary>
    public const int Max = Cluster.Protocol.Limits.MaxInstances;

    public static int Resolve(int requested, int processorCount)
    {
        int count = requested > 0 ? requested : processorCount + requested;
        return count < 1 ? 1 : count;
    }
}
