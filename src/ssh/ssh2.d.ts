// Types for the parts of ssh2 1.17 that src/ssh, test/ssh and node-ssh 13.2.1's typings use. @types/ssh2 is not installed (it
// would pull a second @types/node); if it is added later, delete this file.
declare module 'ssh2' {
  import { EventEmitter } from 'node:events';
  import type { Socket } from 'node:net';
  import type { Duplex, Readable, Writable } from 'node:stream';

  export interface ParsedKey {
    type: string;
    comment: string;
    getPublicSSH(): Buffer;
    isPrivateKey(): boolean;
    verify(data: Buffer, signature: Buffer, algo?: string): boolean | Error;
  }

  export interface ConnectConfig {
    /** A connected net.Socket, or any duplex stream (a forwardOut channel: connection hopping). */
    sock?: Socket | Duplex;
    host?: string;
    port?: number;
    username: string;
    privateKey?: string | Buffer;
    passphrase?: string;
    /** An SSH_AUTH_SOCK path, or an agent object (a BaseAgent subclass: ssh2 checks instanceof). */
    agent?: string | BaseAgent;
    /** Called with the host key blob (SSH wire format); answer with verify(true|false). */
    hostVerifier?: (key: Buffer, verify: (ok: boolean) => void) => void;
    algorithms?: { serverHostKey?: string[] };
    readyTimeout?: number;
    keepaliveInterval?: number;
    keepaliveCountMax?: number;
    debug?: (msg: string) => void;
  }

  /** ssh2's agent base class; OpenSSHAgent talks to an SSH_AUTH_SOCK socket. */
  export class BaseAgent {
    getIdentities(cb: (err: Error | null, keys?: ParsedKey[]) => void): void;
    sign(pubKey: ParsedKey | Buffer, data: Buffer, options: object | undefined, cb: (err: Error | null, signature?: Buffer) => void): void;
  }
  export class OpenSSHAgent extends BaseAgent {
    constructor(socketPath: string);
  }

  /** Options of Client.exec (node-ssh passes {}). */
  export interface ExecOptions {
    env?: Record<string, string>;
    pty?: boolean | object;
  }

  /** Error objects ssh2 emits carry a `level` telling which stage failed. */
  export interface Ssh2Error extends Error {
    level?: 'client-socket' | 'client-timeout' | 'client-authentication' | 'client-dns' | 'handshake' | 'protocol' | 'agent' | string;
    code?: string | number;
  }

  /** Client-side exec channel: stdout is the stream itself; 'exit' gives (code) or (null, 'SIGxxx'). */
  export interface ClientChannel extends Duplex {
    stderr: Readable;
    close(): void;
  }

  /** What node-ssh's forwardOut resolves with. */
  export type Channel = ClientChannel;

  export class Client extends EventEmitter {
    connect(config: ConnectConfig): this;
    exec(command: string, options: ExecOptions, callback: (err: Error | undefined, channel: ClientChannel) => void): this;
    exec(command: string, callback: (err: Error | undefined, channel: ClientChannel) => void): this;
    /** direct-tcpip: the server opens a TCP connection to dstIP:dstPort; a failure carries `reason` (1 = administratively prohibited). */
    forwardOut(srcIP: string, srcPort: number, dstIP: string, dstPort: number, callback: (err: (Error & { reason?: number }) | undefined, channel: ClientChannel) => void): this;
    end(): this;
    destroy(): this;
  }

  export interface AuthContext {
    method: string;
    username: string;
    key?: { algo: string; data: Buffer };
    signature?: Buffer;
    blob?: Buffer;
    hashAlgo?: string;
    accept(): void;
    reject(methods?: string[], partial?: boolean): void;
  }

  export interface ServerChannel extends Duplex {
    stderr: Writable;
    exit(code: number): void;
    exit(signal: string, coreDumped?: boolean, message?: string): void;
  }

  export interface Session extends EventEmitter {
    on(event: 'exec', listener: (accept: () => ServerChannel, reject: () => void, info: { command: string }) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
  }

  export interface TcpipInfo {
    srcIP: string;
    srcPort: number;
    destIP: string;
    destPort: number;
  }

  export interface Connection extends EventEmitter {
    on(event: 'authentication', listener: (ctx: AuthContext) => void): this;
    on(event: 'tcpip', listener: (accept: () => ServerChannel, reject: () => void, info: TcpipInfo) => void): this;
    on(event: 'session', listener: (accept: () => Session, reject: () => void) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
    end(): this;
  }

  export class Server extends EventEmitter {
    constructor(config: { hostKeys: (string | Buffer)[] }, listener?: (client: Connection) => void);
    listen(port: number, host: string, callback?: () => void): this;
    address(): { port: number; address: string };
    close(callback?: () => void): this;
  }

  export const utils: {
    parseKey(data: string | Buffer, passphrase?: string | Buffer): ParsedKey | ParsedKey[] | Error;
  };

  const ssh2: { Client: typeof Client; Server: typeof Server; utils: typeof utils; BaseAgent: typeof BaseAgent; OpenSSHAgent: typeof OpenSSHAgent };
  export default ssh2;
}
