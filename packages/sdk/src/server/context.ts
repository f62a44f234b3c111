import type { z } from 'zod';
import type { Engine } from '../engine/engine';
import type { AccessPolicy } from './access';
import type { ServerOptions } from './options';

/** What every route module of the service is given. */
export interface ServerContext {
  engine: Engine;
  access: AccessPolicy;
  /** The validated options, defaults applied. */
  settings: z.output<typeof ServerOptions>;
}
