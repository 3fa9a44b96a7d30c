using System;
using System.Collections.Generic;

namespace Cluster.Fleet
{
    /// <summary>The app names a pipeline gives a rollout, each once, in the order they came.</summary>
    internal sealed class FleetNames
    {
        private readonly List<string> _names = new List<string>();
        private readonly HashSet<string> _seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);

        public bool Any => _names.Count > 0;

        public string[] All => _names.ToArray();

        public void Add(IEnumerable<string> names)
        {
            foreach (string name in names)
            {
                if (_seen.Add(name))
                {
                    _names.Add(name);
                }
            }
        }
    }
}
