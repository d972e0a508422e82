// The dashboard: static files built by Vite into src/ui/web/dist.
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const uiRoutes: FastifyPluginAsync<{ uiDir: string }> = async (app, { uiDir }) => {
  if (!existsSync(join(uiDir, 'index.html'))) {
    app.get('/', { schema: { hide: true } }, async (_req, reply) =>
      reply.status(503).type('text/plain').send(`dashboard not built (no ${join(uiDir, 'index.html')}); run: npm run build:ui\n`),
    );
    return;
  }
  await app.register(fastifyStatic, { root: uiDir, prefix: '/', index: ['index.html'], wildcard: true });
};
