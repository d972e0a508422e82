// One error shape for the API: 400s name the offending field, as the CLI prints them.
import type { FastifyError, FastifyInstance } from 'fastify';
import { FilterError } from '../flows/filter.js';

export interface ApiError {
  statusCode: number;
  error: string;
  message: string;
  field?: string;
}

export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | FilterError | Error, _req, reply) => {
    if (err instanceof FilterError) {
      const body: ApiError = { statusCode: 400, error: 'Bad Request', message: err.message, field: err.field };
      return reply.status(400).send(body);
    }
    const fe = err as FastifyError;
    if (fe.validation && fe.validation.length > 0) {
      const v = fe.validation[0];
      // ajv reports `/limit` (instancePath) or a missing property in params.
      const params = (v?.params ?? {}) as { missingProperty?: string; additionalProperty?: string };
      const field = (v?.instancePath ?? '').replace(/^\//, '').replaceAll('/', '.') || params.missingProperty || params.additionalProperty || fe.validationContext || 'request';
      const body: ApiError = { statusCode: 400, error: 'Bad Request', message: `${field}: ${v?.message ?? 'invalid'}`, field };
      return reply.status(400).send(body);
    }
    const status = fe.statusCode && fe.statusCode >= 400 ? fe.statusCode : 500;
    if (status >= 500) reply.log.error(err);
    const body: ApiError = { statusCode: status, error: status >= 500 ? 'Internal Server Error' : 'Error', message: err.message };
    return reply.status(status).send(body);
  });
}
