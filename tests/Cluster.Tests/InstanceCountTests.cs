using Cluster.Host;
using Xunit;

namespace Cluster.Tests;

public sealed class InstanceCountTests
{
    [Theory]
    [InlineData(0, 4, 4)]
    [InlineData(0, 1, 1)]
    [InlineData(-1, 4, 3)]
    [InlineData(-1, 1, 1)]
    [InlineData(3, 4, 3)]
    [InlineData(12, 2, 12)]
    [InlineData(-100, 4, 1)]
    public void Resolve_reads_zero_as_per_CPU_negative_as_CPUs_minus_and_never_goes_below_one(int requested, int processors, int expected)
    {
        Assert.Equal(expected, InstanceCount.Resolve(requested, processors));
    }
}
