using System.Linq;
using System.Management.Automation;
using Cluster.Protocol;

namespace Cluster.Commands
{
    /// <summary>Sends a message (any value ConvertTo-Json can write) to the running instances of a Node app, which get it with process.on('message').</summary>
    [Cmdlet(VerbsCommunications.Send, "ClusterMessage", SupportsShouldProcess = true)]
    [OutputType(typeof(App))]
    public sealed class SendClusterMessageCommand : DeliveryCmdlet
    {
        private const int MessageDepth = 20;

        /// <summary>The message: a string, a number, a hashtable or an object; it arrives as the value its JSON stands for.</summary>
        [Parameter(Mandatory = true, Position = 1)]
        [AllowEmptyString]
        public object Message { get; set; } = "";

        internal override string Command => CommandNames.Message;

        protected override string What => "a message";

        internal override DeliverySpec? Delivery()
        {
            object value = Message is PSObject wrapped ? wrapped.BaseObject : Message;
            string? json = ScriptBlock.Create($"param($message) ConvertTo-Json -InputObject $message -Depth {MessageDepth} -Compress")
                .Invoke(value).FirstOrDefault()?.BaseObject as string;
            if (json is null)
            {
                ThrowTerminatingError(NewError("InvalidMessage", ErrorCategory.InvalidArgument, "The message could not be written as JSON. Give a string, a number, a hashtable or an object.", Message));
                return null;
            }

            return new DeliverySpec { MessageJson = json };
        }
    }
}
