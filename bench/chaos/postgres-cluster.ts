import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../test/helpers/free-port.js';

const run = promisify(execFile);

const BIN = process.env.KILN_CHAOS_PG_BIN ?? '/usr/lib/postgresql/15/bin';
/** Postgres refuses to run as root, so its binaries run as this user. */
const PG_USER = 'postgres';

async function asPostgres(bin: string, args: string[]): Promise<string> {
  const command = process.getuid?.() === 0 ? 'runuser' : path.join(BIN, bin);
  const argv = process.getuid?.() === 0 ? ['-u', PG_USER, '--', path.join(BIN, bin), ...args] : args;
  const { stdout } = await run(command, argv, { encoding: 'utf8', timeout: 60_000 });
  return stdout;
}

/**
 * A Postgres cluster of its own, on a free port with trust auth, so that the chaos run can
 * really stop and start a server without touching the machine's shared one (other people's
 * tests use it). Everything lives in one temp dir that `remove` deletes.
 */
export class PostgresCluster {
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `postgres://${PG_USER}@127.0.0.1:${this.port}/kiln`;
  }

  private get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  static async create(): Promise<PostgresCluster> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-chaos-pg-'));
    if (process.getuid?.() === 0) await run('chown', [PG_USER, dir]);
    const cluster = new PostgresCluster(dir, await freePort());
    await asPostgres('initdb', ['-D', cluster.dataDir, '-A', 'trust', '-U', PG_USER, '--no-sync', '-E', 'UTF8']);
    // Unix sockets in the cluster's own dir: the default one in /var/run is the shared server's.
    fs.appendFileSync(
      path.join(cluster.dataDir, 'postgresql.conf'),
      [`port = ${cluster.port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`, 'max_connections = 200', 'fsync = off', ''].join('\n'),
    );
    await cluster.start();
    await asPostgres('createdb', ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', PG_USER, 'kiln']);
    return cluster;
  }

  /** Starts the server and returns once it accepts connections. */
  async start(): Promise<void> {
    await asPostgres('pg_ctl', ['start', '-D', this.dataDir, '-l', path.join(this.dir, 'server.log'), '-w', '-t', '60']);
  }

  /** Fast shutdown: every session is terminated, as in a failover or a maintenance restart. */
  async stop(): Promise<void> {
    await asPostgres('pg_ctl', ['stop', '-D', this.dataDir, '-m', 'fast', '-w', '-t', '60']);
  }

  /** Whether the server answers a connection now. */
  async ready(): Promise<boolean> {
    try {
      await run(path.join(BIN, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(this.port), '-t', '1']);
      return true;
    } catch {
      return false;
    }
  }

  /** Stops the server if it runs and deletes the cluster. */
  async remove(): Promise<void> {
    if (fs.existsSync(path.join(this.dataDir, 'postmaster.pid'))) await this.stop().catch(() => undefined);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
