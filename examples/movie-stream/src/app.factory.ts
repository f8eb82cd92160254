import 'reflect-metadata';
import type { INestApplication, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';

export interface CreateAppOptions {
  /** Nest log levels; default from `LOG_LEVEL` (`log`: everything but debug and verbose). */
  logLevels?: LogLevel[];
}

const LEVELS_FROM_QUIETEST: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** The app, created but not yet listening: `main.ts` listens, and so may tests and tools. */
export async function createApp(options: CreateAppOptions = {}): Promise<INestApplication> {
  return NestFactory.create(AppModule, { logger: options.logLevels ?? logLevelsFromEnv(process.env.LOG_LEVEL) });
}

/** `LOG_LEVEL=warn` enables fatal, error and warn; unknown or unset means `log`. */
function logLevelsFromEnv(level: string | undefined): LogLevel[] {
  const index = LEVELS_FROM_QUIETEST.indexOf((level ?? 'log') as LogLevel);
  return LEVELS_FROM_QUIETEST.slice(0, (index === -1 ? LEVELS_FROM_QUIETEST.indexOf('log') : index) + 1);
}
