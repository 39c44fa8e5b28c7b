import net from 'node:net';
import pg from 'pg';
import { TEST_PG_URL } from './harness.js';

/**
 * A loopback TCP proxy in front of the test Postgres, standing in for a database restart:
 * `cut()` has the server terminate every session that came through it (`pg_terminate_backend`,
 * which clients see as "terminating connection due to administrator command", as in a real
 * restart), then refuses new connections until `restore()`.
 */
export class PgProxy {
  private server: net.Server | null = null;
  private sockets = new Set<net.Socket>();
  /** Local ports of our connections to Postgres: pg_stat_activity.client_port names the sessions. */
  private upstreamPorts = new Set<number>();
  private readonly target = new URL(TEST_PG_URL);
  port = 0;

  /** TEST_PG_URL with the proxy in the database's place. */
  get url(): string {
    const url = new URL(TEST_PG_URL);
    url.host = `127.0.0.1:${this.port}`;
    return url.toString();
  }

  async start(): Promise<void> {
    this.server = net.createServer((client) => this.pipe(client));
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  private pipe(client: net.Socket): void {
    const upstream = net.connect(Number(this.target.port || 5432), this.target.hostname);
    upstream.on('connect', () => this.upstreamPorts.add(upstream.localPort!));
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /**
   * The outage begins: new sessions are refused, then those through the proxy are terminated.
   * Refused first: a client that reconnects at once (a LISTEN connection does) would otherwise
   * get a session between the terminate and the close, and hold the proxy open through the outage.
   */
  async cut(): Promise<number> {
    const closed = new Promise<void>((resolve) => this.server!.close(() => resolve()));
    const admin = new pg.Client({ connectionString: TEST_PG_URL });
    await admin.connect();
    const res = await admin.query<{ pid: number }>('select pg_terminate_backend(pid) as ok, pid from pg_stat_activity where client_port = any($1::int[])', [
      [...this.upstreamPorts],
    ]);
    await admin.end();
    this.upstreamPorts.clear();
    // A connection accepted just before the close whose session had not started yet.
    for (const s of this.sockets) s.destroy();
    await closed;
    return res.rowCount ?? 0;
  }

  /** The database is back on the same address. */
  async restore(): Promise<void> {
    await this.start();
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
