/**
 * A TCP forwarder on loopback that a test can cut and restore: how the cluster tests take
 * PostgreSQL or Redis "down" for one instance without stopping the machine's real service.
 */
import type { Socket, TCPSocketListener } from "bun";

interface Pair {
  client: Socket<Link>;
  upstream?: Socket<Link>;
  /** Bytes from the client that arrived before the upstream connection was open. */
  early: Uint8Array[];
}

interface Link {
  pair: Pair;
}

export class TcpProxy {
  readonly #listener: TCPSocketListener<Link>;
  readonly #pairs = new Set<Pair>();
  #down = false;

  constructor(targetHost: string, targetPort: number) {
    const pairs = this.#pairs;
    const isDown = () => this.#down;
    this.#listener = Bun.listen<Link>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(client) {
          if (isDown()) {
            client.end();
            return;
          }
          const pair: Pair = { client, early: [] };
          client.data = { pair };
          pairs.add(pair);
          void Bun.connect<Link>({
            hostname: targetHost,
            port: targetPort,
            socket: {
              open(upstream) {
                upstream.data = { pair };
                pair.upstream = upstream;
                for (const chunk of pair.early) upstream.write(chunk);
                pair.early = [];
              },
              data: (_upstream, chunk) => void pair.client.write(chunk),
              close: () => {
                pairs.delete(pair);
                pair.client.end();
              },
              error: () => void pair.client.end(),
            },
          }).catch(() => client.end());
        },
        data(client, chunk) {
          const { pair } = client.data;
          if (pair.upstream === undefined) pair.early.push(new Uint8Array(chunk));
          else pair.upstream.write(chunk);
        },
        close(client) {
          const pair = client.data?.pair;
          if (pair === undefined) return;
          pairs.delete(pair);
          pair.upstream?.end();
        },
      },
    });
  }

  get port(): number {
    return this.#listener.port;
  }

  /** Drops every connection and refuses new ones (they are accepted and closed at once). */
  cut(): void {
    this.#down = true;
    for (const pair of this.#pairs) {
      pair.client.terminate();
      pair.upstream?.terminate();
    }
    this.#pairs.clear();
  }

  restore(): void {
    this.#down = false;
  }

  [Symbol.dispose](): void {
    this.cut();
    this.#listener.stop(true);
  }
}
