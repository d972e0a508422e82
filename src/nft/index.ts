// The adapter to the kernel's nftables: feeds a rendered ruleset (src/render) to `nft` as one
// transaction — partial when the applier knows what the kernel holds, a full replace otherwise.
// Its own folder because it is the one place that talks to nftables (and where a faster
// channel, a long-lived `nft` or netlink, plugs in): the renderer stays pure below it, the
// agent drives it from above.
export { Applier, nftRunner, type ApplyResult, type NftRunner, type NftRunResult } from './apply.js';
export { netlinkElementWriter, elementCommands, namedHooksSupported, type ChainChanges, type ElementChange, type ElementWriter, type ElementWriteResult } from './element-writer.js';
export { NfnetlinkSocket, interfaceIndexes, interfaceIndexesByIp, netlinkIdle, sourceCheckInForce, sourceCheckInForceByGrep, strictSourceCheck, strictSourceCheckBySysctl } from './netlink-socket.js';
