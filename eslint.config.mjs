// ESLint flat config: typescript-eslint's type-aware recommended rules plus Pulumi's rule that
// catches Outputs interpolated into template literals (they render as a warning string).
import pulumi from "@pulumi/eslint-plugin";
import tseslint from "typescript-eslint";

export default tseslint.config(
    // examples/ are type-checked by the root tsconfig (which maps devpi-pulumi to components/); each has its own tsconfig for users.
    { ignores: ["node_modules/**", "bin/**", "dist/**", "examples/**"] },
    ...tseslint.configs.recommendedTypeChecked,
    {
        languageOptions: {
            parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
        },
        plugins: { pulumi },
        rules: {
            "pulumi/no-output-in-template-literal": "error",
            "pulumi/no-output-instance-in-template-literal": "error",
            "@typescript-eslint/no-floating-promises": "error",
            "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
        },
    },
    {
        // node:test's describe/it return promises the runner itself awaits.
        files: ["test/**/*.ts"],
        rules: { "@typescript-eslint/no-floating-promises": "off" },
    },
    {
        files: ["**/*.mjs"],
        ...tseslint.configs.disableTypeChecked,
        rules: {
            ...tseslint.configs.disableTypeChecked.rules,
            "pulumi/no-output-in-template-literal": "off",
            "pulumi/no-output-instance-in-template-literal": "off",
        },
    },
);
