import { defineConfig } from 'vitest/config';

// Unit tests for the sidebar's model code (pure TypeScript, no DOM, no JupyterLab runtime).
export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node'
  }
});
