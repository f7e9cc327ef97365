// Jump hosts as people write them: ProxyJump `[user@]host[:port][,…]` (ssh_config or -J/-o), the
// `ssh -W %h:%p [-q] [-p PORT] [-l USER] [-i KEY] [user@]host` ProxyCommand that predates ProxyJump
// (kubespray's bastion setup writes it), and ansible_ssh_common_args, which carries either. Pure:
// the caller turns a thrown ProxyError into an exit-2 error naming where the text came from.

export class ProxyError extends Error {}

/** One hop as written: what is not written comes from ssh_config for that host, else defaults. */
export interface HopSpec {
  host: string;
  user?: string;
  port?: number;
  /** `-i FILE` of a ProxyCommand. */
  identityFile?: string;
}

/** Split like Python's shlex.split (POSIX), which Ansible uses on ansible_ssh_common_args. */
export function shellSplit(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inToken = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new ProxyError(`unterminated ' in ${text}`);
      cur += text.slice(i + 1, end);
      i = end;
      inToken = true;
    } else if (c === '"') {
      inToken = true;
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && j + 1 < text.length && '\\"$`\n'.includes(text[j + 1]!)) j++;
        cur += text[j];
      }
      if (j >= text.length) throw new ProxyError(`unterminated " in ${text}`);
      i = j;
    } else if (c === '\\') {
      if (i + 1 < text.length) cur += text[++i];
      inToken = true;
    } else if (/\s/.test(c)) {
      if (inToken) out.push(cur);
      cur = '';
      inToken = false;
    } else {
      cur += c;
      inToken = true;
    }
  }
  if (inToken) out.push(cur);
  return out;
}

function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) throw new ProxyError(`${what}: port ${JSON.stringify(text)} is not a port number (1-65535)`);
  return Number(text);
}

/** `[user@]host[:port]` or `ssh://[user@]host[:port]`; IPv6 as `[addr]:port` or bare. */
export function parseHop(text: string): HopSpec {
  let t = text.trim();
  if (t.startsWith('ssh://')) t = t.slice(6).replace(/\/$/, '');
  if (t === '') throw new ProxyError('empty jump host');
  const at = t.lastIndexOf('@');
  const user = at >= 0 ? t.slice(0, at) : undefined;
  let rest = at >= 0 ? t.slice(at + 1) : t;
  if (user === '') throw new ProxyError(`jump host ${text}: empty user name`);
  let port: number | undefined;
  let host: string;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(rest);
  if (v6) {
    host = v6[1]!;
    if (v6[2] !== undefined) port = parsePort(v6[2], `jump host ${text}`);
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    const i = rest.indexOf(':');
    port = parsePort(rest.slice(i + 1), `jump host ${text}`);
    rest = rest.slice(0, i);
    host = rest;
  } else host = rest;
  if (host === '' || /[\s/'"`$;&|<>()\\]/.test(host)) throw new ProxyError(`jump host ${text}: ${JSON.stringify(host)} is not a host name or address`);
  return { host, ...(user !== undefined ? { user } : {}), ...(port !== undefined ? { port } : {}) };
}

/** ProxyJump's value: hops in order (the first is connected to first); `none` is no jump. */
export function parseProxyJump(text: string): HopSpec[] {
  if (text.trim().toLowerCase() === 'none') return [];
  return text.split(',').map(parseHop);
}

export const PROXY_COMMAND_FORM = 'ssh -W %h:%p [-q] [-p PORT] [-l USER] [-i KEY] [-J JUMP] [USER@]HOST';

/**
 * A ProxyCommand of the form `ssh -W %h:%p … [user@]host` as hops; any other command (nc, socat,
 * connect-proxy, `ssh host nc %h %p`, …) is refused: kha-deploy runs no local command to connect.
 */
export function parseProxyCommand(command: string): HopSpec[] {
  const refuse = (why: string): never => {
    throw new ProxyError(`ProxyCommand ${JSON.stringify(command)} is not supported (${why}): kha-deploy runs no local command to reach a host; it understands only \`${PROXY_COMMAND_FORM}\``);
  };
  if (command.trim().toLowerCase() === 'none') return [];
  let argv: string[];
  try {
    argv = shellSplit(command);
  } catch (err) {
    return refuse((err as Error).message);
  }
  if (argv[0] === 'exec') argv.shift();
  if (!argv[0] || !/(^|\/)ssh$/.test(argv[0])) return refuse(`it runs ${argv[0] ?? 'nothing'}, not ssh`);
  let forward: string | undefined;
  const hop: Partial<HopSpec> = {};
  let before: HopSpec[] = [];
  const dest: string[] = [];
  const noArg = new Set(['q', 'T', 'N', 'C', 'n', 'x', 'a', 'A', '4', '6', 'v', 'k', 'K', 'g']);
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-') || a === '-') {
      dest.push(a);
      continue;
    }
    // Flags may be grouped (-qT) and an option may carry its value (-p2222).
    for (let j = 1; j < a.length; j++) {
      const f = a[j]!;
      if (noArg.has(f)) continue;
      const value = j + 1 < a.length ? a.slice(j + 1) : argv[++i];
      if (value === undefined) return refuse(`-${f} needs a value`);
      if (f === 'W') forward = value;
      else if (f === 'p') hop.port = parsePort(value, `ProxyCommand -p`);
      else if (f === 'l') hop.user = value;
      else if (f === 'i') hop.identityFile = value;
      else if (f === 'J') before = parseProxyJump(value);
      else if (f === 'o') {
        const o = /^(\w+)\s*(?:=\s*|\s+)(.*)$/.exec(value);
        const key = o?.[1]?.toLowerCase();
        if (key === 'port') hop.port = parsePort(o![2]!, 'ProxyCommand -o Port');
        else if (key === 'user') hop.user = o![2]!;
        else if (key === 'identityfile') hop.identityFile = o![2]!;
        else if (key === 'proxyjump') before = parseProxyJump(o![2]!);
        else if (key === 'proxycommand') return refuse('a ProxyCommand inside the ProxyCommand');
        // other -o options tune the ssh binary (StrictHostKeyChecking is never turned off here): ignored
      } else return refuse(`option -${f}`);
      break;
    }
  }
  if (forward === undefined) return refuse('no -W %h:%p');
  if (!/^(%h|\[%h\]):%p$/.test(forward)) return refuse(`-W ${forward} instead of -W %h:%p`);
  if (dest.length !== 1) return refuse(dest.length === 0 ? 'no jump host named' : `a remote command (${dest.slice(1).join(' ')})`);
  const target = parseHop(dest[0]!);
  return [...before, { ...target, ...hop }]; // -l/-p/-i win over user@host, as the options come first
}

export interface CommonArgsJump {
  /** The jump as ProxyJump or ProxyCommand text, whichever came first (ssh: the first wins). */
  proxyJump?: string;
  proxyCommand?: string;
  /** Options read but not honoured (StrictHostKeyChecking=no, …), in words. */
  warnings: string[];
}

/** Options of ansible_ssh_common_args that only tune the ssh binary Ansible runs: nothing to do for kha-deploy. */
const TUNING = new Set([
  'controlmaster', 'controlpersist', 'controlpath', 'connectionattempts', 'connecttimeout', 'serveraliveinterval',
  'serveralivecountmax', 'compression', 'forwardagent', 'loglevel', 'preferredauthentications', 'kbdinteractiveauthentication',
  'passwordauthentication', 'gssapiauthentication', 'pubkeyauthentication', 'tcpkeepalive', 'addressfamily', 'hashknownhosts',
  'userknownhostsfile', 'globalknownhostsfile', 'checkhostip', 'visualhostkey', 'batchmode', 'requesttty', 'sendenv', 'setenv', 'identitiesonly',
]);

/** The jump in ansible_ssh_common_args (`-o ProxyJump=…`, `-o ProxyCommand="ssh -W %h:%p …"`, `-J …`). */
export function parseCommonArgs(text: string): CommonArgsJump {
  const out: CommonArgsJump = { warnings: [] };
  const argv = shellSplit(text);
  const setJump = (kind: 'proxyJump' | 'proxyCommand', v: string) => {
    if (out.proxyJump === undefined && out.proxyCommand === undefined) out[kind] = v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    let opt: string | undefined;
    if (a === '-o') opt = argv[++i];
    else if (a.startsWith('-o')) opt = a.slice(2);
    else if (a === '-J' || (a.startsWith('-J') && a.length > 2)) {
      const v = a === '-J' ? argv[++i] : a.slice(2);
      if (v === undefined) throw new ProxyError('-J needs a value');
      setJump('proxyJump', v);
      continue;
    } else {
      out.warnings.push(`${a} is not read by kha-deploy (of ansible_ssh_common_args it reads -o ProxyJump, -o ProxyCommand and -J)`);
      continue;
    }
    if (opt === undefined) throw new ProxyError('-o needs a value');
    const m = /^(\w+)\s*(?:=\s*|\s+)(.*)$/s.exec(opt);
    if (!m) throw new ProxyError(`-o ${opt}: expected KEY=VALUE`);
    const key = m[1]!.toLowerCase();
    const value = m[2]!;
    if (key === 'proxyjump') setJump('proxyJump', value);
    else if (key === 'proxycommand') setJump('proxyCommand', value);
    else if (key === 'stricthostkeychecking' && /^(no|off|false)$/i.test(value.trim()))
      out.warnings.push(`-o StrictHostKeyChecking=${value} is ignored: kha-deploy always verifies host keys (--accept-new-host-keys trusts hosts not yet known)`);
    else if (key === 'userknownhostsfile' && value.trim() === '/dev/null')
      out.warnings.push('-o UserKnownHostsFile=/dev/null is ignored: kha-deploy verifies host keys against --known-hosts (default ~/.ssh/known_hosts)');
    else if (key !== 'stricthostkeychecking' && !TUNING.has(key)) out.warnings.push(`-o ${m[1]} is not read by kha-deploy (of ansible_ssh_common_args it reads -o ProxyJump, -o ProxyCommand and -J)`);
  }
  return out;
}
