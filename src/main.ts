// Process entry: `node --import tsx src/main.ts` in development, dist/main.js behind bin/kha-deploy.js.
import { run } from './cli.js';

await run();
