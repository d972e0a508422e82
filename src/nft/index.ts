// The adapter to the kernel's nftables: feeds a rendered ruleset to `nft` as one transaction
// (partial when the applier knows what the kernel holds, full replace otherwise).
export { Applier, nftRunner, type ApplyResult, type NftRunner, type NftRunResult } from './apply.js';
export { netlinkElementWriter, elementCommands, type ElementChange, type ElementWriter, type ElementWriteResult } from './element-writer.js';
export { NfnetlinkSocket, netlinkIdle } from './netlink-socket.js';
